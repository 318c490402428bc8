-- The preference pairs built from the rated completions, in TRL's conversational format (prompt, chosen and
-- rejected as lists of {role, content}), in source order. `prefclean_judgment` holds the ratings, the indexes of
-- the two completions (1-based), the decision and the reason: file exports leave it out unless the export sets
-- `with_judgments: true`.
{{ config(materialized='table') }}

select
  p.messages as prompt,
  [{'role': 'assistant', 'content': p.responses[p.chosen_index]}] as chosen,
  [{'role': 'assistant', 'content': p.responses[p.rejected_index]}] as rejected,
  {
    'chosen_rating': p.ratings[p.chosen_index], 'rejected_rating': p.ratings[p.rejected_index],
    'chosen_index': p.chosen_index, 'rejected_index': p.rejected_index, 'decision': p.decision, 'reason': p.reason
  } as prefclean_judgment
from {{ ref('completion_pairs') }} p
join (select pair_id, min(source_row) as first_row from {{ ref('stg_rows') }} group by pair_id) r using (pair_id)
where p.decision = 'keep'
order by r.first_row
