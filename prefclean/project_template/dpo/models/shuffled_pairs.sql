-- The pair as the judge will see it: both responses in `generations`, in a seeded random order, and the
-- conversation so far (`conversation`: the final user turn, or every turn when there were earlier ones).
{{ config(materialized='table') }}

select
  pair_id,
  system,
  instruction,
  messages,
  {{ conversation_prompt('messages') }} as conversation,
  chosen,
  rejected,
  {{ shuffle_pair('chosen', 'rejected', key='pair_id', seed=var('shuffle_seed')) }}
from {{ ref('stg_pairs') }}
