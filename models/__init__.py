"""Example models, trained on data the project generates: nothing is downloaded."""
