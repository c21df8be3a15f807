from dataclasses import dataclass


@dataclass
class Config:
    block_size: int = 16
    seed: int = 0
