"""claw-operator: runs OpenClaw chatbot instances on Railway from ClawInstance resources."""

__version__ = "0.1.0"
