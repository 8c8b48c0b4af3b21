"""The vc track: Form D features, label and the raise-prediction model."""
