"""Leaf audio utilities: files and arrays in, arrays out. Imports nothing of ours."""
