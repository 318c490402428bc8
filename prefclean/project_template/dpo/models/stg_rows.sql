-- Every source row in the common staged shape (prefclean/formats/): its position (source_row), the conversation so
-- far as messages, the final responses and, for a row that does not fit its format, why (excluded_reason). The
-- source row itself is not copied here: cleaned_rows joins it back by source_row (format_originals) to write it
-- unchanged. The format is `sources.<name>.format` in prefclean.yml.
{{ config(materialized='table') }}
{{ format_rows(var('source')) }}
