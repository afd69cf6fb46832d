"""A real image as the reference: inversion to a noise trajectory, holding the reference slot on it, files."""
