"""Sets larger than one batch: split a set into chunks that each carry the reference, and gather it back.

A target depends only on itself and the reference, and the reference on nothing else, so a set sampled in
chunks gives the images of one big batch as long as each image keeps its starting noise (the latent's
batch_index), its prompt rows and its control hint rows. The same holds for chunks sampled by several
participants (parts), put back together from their tagged images (part_tag, part_assembly).
"""

from .chunk_inputs import ConditioningRows, latent_rows
from .chunk_plan import WHOLE_SET, SetChunks, part_chunk_range, plan_chunks
from .part_assembly import DEFAULT_REFERENCE_TOLERANCE, AssembledSet, assemble_parts, tagged_part
from .part_tag import PartTag, decode_tag, encode_tag
