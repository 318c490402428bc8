-- The pair as the judge will see it: both responses in `generations`, in a seeded random order.
{{ config(materialized='table') }}

select
  pair_id,
  system,
  instruction,
  chosen,
  rejected,
  {{ shuffle_pair('chosen', 'rejected', key='pair_id', seed=var('shuffle_seed')) }},
  response_words(chosen) as chosen_words,
  response_words(rejected) as rejected_words
from {{ ref('stg_pairs') }}
