-- Every staged pair reaches the audit table with a decision: a failing row is a pair that went missing.
select s.pair_id
from {{ ref('stg_pairs') }} s
left join {{ ref('pair_decisions') }} d using (pair_id)
where d.pair_id is null
