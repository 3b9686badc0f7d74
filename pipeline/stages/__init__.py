"""The Ray Data stages, each a callable on ``dict[str, np.ndarray]`` batches: decode, segment, tiles, postprocess."""
