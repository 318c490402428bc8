-- Every source row stg_pairs does not keep, with the reason: null_field / empty_field (`field` names the
-- column), duplicate (`duplicate_of` is the source_row of the pair kept instead), or unexplained (a bug).
-- The run summary counts these by reason: rows_in = pairs + excluded. List them:
--   prefclean sql "select source_row, reason, field, instruction from excluded_rows"
{{ config(materialized='table', excluded=true) }}
{%- set fields = ['system', 'instruction', 'chosen', 'rejected'] %}
{%- set required = ['instruction', 'chosen', 'rejected'] %}

{{ excluded_rows(source(var('source', 'orca_sample')), kept=ref('stg_pairs'), key=pair_id(fields),
                 key_column='pair_id', fields=fields, required=required, nonempty=required) }}
