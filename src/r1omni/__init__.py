"""r1omni: omni-multimodal emotion recognition with verifiable-reward RL (R1-Omni, reimplemented)."""

__version__ = "0.1.0"
