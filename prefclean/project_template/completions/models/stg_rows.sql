-- Every source row in the common staged shape (prefclean/formats/): the conversation so far as messages, the two
-- final responses, the original row (cleaned_rows writes it back unchanged) and, for a row that does not fit its
-- format, why (excluded_reason). The format is `sources.<name>.format` in prefclean.yml.
{{ config(materialized='table') }}
{{ format_rows(var('source')) }}
