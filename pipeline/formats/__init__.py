"""Bytes <-> pixels for one family of files (TIFF/GeoTIFF, DICOM, JPEG); no Ray, no I/O of the run path."""
