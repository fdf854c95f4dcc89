"""The engine room: the model manager, the zoo of model cards, downloads (Hub files and https URLs) and the built-in configurations."""
