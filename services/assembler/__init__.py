"""assembler: streams every member through stream-zip into a multipart upload, one logged part at a time."""
