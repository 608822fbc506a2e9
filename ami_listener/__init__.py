"""The AMI connection (panoramisk): events in, actions out."""
