"""contextual-targeting: ML audience segments from Amazon Personalize, delivered to engagement channels."""
