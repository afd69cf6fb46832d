"""Set scores: how alike the images of a set are (the paper's set consistency) and the picture of it."""
