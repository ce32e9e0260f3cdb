"""One writer per dataset format, laid out as the real dataset lays it out.

Each module's ``write`` writes its format's files and returns the sources.yaml entries for them,
so sources.yaml lists exactly what was written. Formats built on another dataset's images take
them as an argument (e.g. VQA v2 and RefCOCO+ ask about the COCO images).
"""
