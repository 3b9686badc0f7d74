"""Where bytes come from and go to: filesystems, input sources, the output contract, the sink, the output folder."""
