"""A self-supervised image encoder (SimCLR, trained here on images/train and images/extra) and
what it serves: a perceptual distance (`distance`) and reusable features (`features`).

    from neurocodec.perceptual import distance, features
    distance(original, decoded)   # float, 0 for identical images
    features(photo)               # 1-D float32 vector of unit length

The weights ship in neurocodec/perceptual/weights (MODEL_CARD.md there).
"""

from .similarity import distance, feature_distance
from .encoder import Encoder, load_encoder
from .embedding import features

__all__ = ["Encoder", "distance", "feature_distance", "features", "load_encoder"]
