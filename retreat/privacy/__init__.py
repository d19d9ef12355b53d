"""A participant's data rights: their export, deletion requests and retention."""
