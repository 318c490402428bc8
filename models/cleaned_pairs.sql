-- The DPO-ready dataset: kept pairs as they were, flipped pairs with chosen and rejected swapped.
{{ config(materialized='table') }}

select {{ dpo_columns('d') }}
from {{ ref('pair_decisions') }} d
where d.decision in ('keep', 'flip')
order by d.pair_id
