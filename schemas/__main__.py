"""`python -m schemas` rewrites the shipped JSON Schema file from the models."""

from schemas.json_schema import JSON_SCHEMA_PATH, render_json_schema

JSON_SCHEMA_PATH.write_text(render_json_schema())
print(f"wrote {JSON_SCHEMA_PATH}")
