-- The audit table: every pair once, with the panel's combined ratings, agreement, the position-bias check,
-- the decision (keep / flip / drop) and why. Human reviews pulled from Argilla override the judges.
{{ config(materialized='table', audit=true) }}
{%- set bias = bias_check_mode(var('check_position_bias'), var('bias_check_margin', 1),
                               direction=var('bias_check_direction', 'auto'), keep=decision_settings()) %}
{#- only the uncertain check reads judged_pairs here: a project whose ratings come from elsewhere has none -#}
{%- if bias.mode == 'uncertain' %}{{ expect_bias_check_current(bias, ref('judged_pairs'), ref('shuffled_pairs')) }}{% endif %}

with per_judge as (
  select
    *,
    chosen_rating - rejected_rating as margin,
    {{ verdict('chosen_rating - rejected_rating', var('min_margin')) }} as verdict,
    {{ verdict('chosen_rating_swapped - rejected_rating_swapped', var('min_margin')) }} as verdict_swapped
  from {{ ref('pair_ratings') }}
),
-- Every aggregate below keeps a fixed-size state per pair, or a plain list(): DuckDB spills those to disk under
-- its memory limit. mode(), string_agg() and ordered aggregates (first/list ... order by) keep per-pair states it
-- cannot spill: at 2M pairs they ran out of the build's 1 GB (issue 16 §6). The orders are applied to each
-- pair's small list afterwards instead.
votes as (
  select pair_id, verdict, count(*) as votes, min(judge) as first_judge
  from per_judge where verdict is not null group by pair_id, verdict
),
majority as (
  -- the panel's most common verdict; a tie goes to the verdict of the first judge by name
  select pair_id, arg_min(verdict, (-votes, first_judge)) as majority_verdict from votes group by pair_id
),
members as (
  select
    pair_id,
    count(*) as judges,
    avg(chosen_rating) as chosen_rating,
    avg(rejected_rating) as rejected_rating,
    avg(margin) as margin,
    any_value(majority_verdict) as majority_verdict,
    -- share of the panel whose verdict is the majority's
    avg(case when verdict = majority_verdict then 1.0 else 0.0 end) as agreement,
    bool_or(error is not null or (bias_checked and swapped_error is not null)) as failed,
    -- requests not sent because the judge's budget was spent: their own reason; the next build judges them
    bool_or({{ not_judged_budget('error') }} or (bias_checked and {{ not_judged_budget('swapped_error') }})) as not_judged,
    bool_or(starts_with(error, 'not judged: batch pending')
            or (bias_checked and starts_with(swapped_error, 'not judged: batch pending'))) as pending,
    bool_or(bias_checked and verdict is distinct from verdict_swapped) as position_flipped,
    bool_or(bias_checked) as bias_checked,
    bool_or(escalated) as escalated,
    -- the panel's answers, put in judge order below (list_sort compares the fields in this order)
    list({'judge': judge, 'judge_model': judge_model, 'chosen_rationale': chosen_rationale,
          'rejected_rationale': rejected_rationale, 'raw': raw, 'error': error}) as answers,
    sum(prompt_tokens) as prompt_tokens,
    sum(completion_tokens) as completion_tokens
  from per_judge left join majority using (pair_id)
  group by pair_id
),
panel as (
  select
    * exclude (answers),
    -- the distinct judge models, sorted, comma-separated (NULL when none is known)
    case when len(list_distinct(list_transform(answers, lambda a: a.judge_model))) > 0
         then array_to_string(list_sort(list_distinct(list_transform(answers, lambda a: a.judge_model))), ', ') end
      as judge_models,
    answers[1].chosen_rationale as chosen_rationale,
    answers[1].rejected_rationale as rejected_rationale,
    list_transform(answers, lambda a: a.raw) as raw_answers,
    case when list_bool_or(list_transform(answers, lambda a: a.error is not null))
         then list_transform(list_filter(answers, lambda a: a.error is not null), lambda a: a.error) end as errors
  from (select * replace (list_sort(answers) as answers) from members)
),
{% if relation_exists('human', 'reviews') %}
human as (
  -- the latest submitted review per pair (drafts and discarded ones are kept in the table but count for
  -- nothing), mapped back to chosen/rejected through the pair's order
  select
    h.pair_id,
    h.ratings[list_position(s."order", 'chosen')] as human_chosen,
    h.ratings[list_position(s."order", 'rejected')] as human_rejected
  from human.reviews h join {{ ref('shuffled_pairs') }} s using (pair_id)
  where h.status = 'submitted'
  qualify row_number() over (partition by h.pair_id order by h.updated_at desc) = 1
),
{% else %}
human as (select null::varchar as pair_id, null::integer as human_chosen, null::integer as human_rejected where false),
{% endif %}
decided as (
  select
    s.pair_id, s.system, s.instruction, s.chosen, s.rejected, s.generations, s."order",
    p.judges, p.judge_models, p.chosen_rating, p.rejected_rating, p.margin, p.majority_verdict, p.agreement,
    p.failed, p.not_judged, p.position_flipped, p.bias_checked, p.escalated,
    -- 'uncertain' bias check: a judged pair not judged swapped (bias_check says why)
    {% if bias.mode == 'uncertain' %}coalesce(not p.bias_checked and not p.failed, false){% else %}null::boolean{% endif %}
      as bias_check_skipped, p.chosen_rationale, p.rejected_rationale,
    p.raw_answers, p.errors, p.prompt_tokens, p.completion_tokens,
    h.human_chosen, h.human_rejected,
    {{ pair_decision('p.chosen_rating', 'p.rejected_rating', failed='p.failed', agreement='p.agreement',
                     position_flipped='p.position_flipped', not_judged='p.not_judged', pending='p.pending',
                     **decision_settings()) }} as judged,
    {{ pair_decision('h.human_chosen', 'h.human_rejected', min_margin=1, poor_max=var('poor_max'),
                     allow_flip=true) }} as reviewed
  from {{ ref('shuffled_pairs') }} s
  left join panel p using (pair_id)
  left join human h using (pair_id)
)
select
  * exclude (judged, reviewed),
  case when human_chosen is not null then reviewed.decision else judged.decision end as decision,
  case when human_chosen is not null then 'human_review: ' || reviewed.reason else judged.reason end as reason,
  -- the judges' own decision, before any human review (the review queue's calibration draw is stratified by it)
  judged.decision as judge_decision,
  -- the bias check of the pair: swapped, or why not (clear, would_drop, against_tilt, first_pass_failed, off)
  {{ bias_check_reason(bias, 'bias_checked', 'failed', 'chosen_rating', 'rejected_rating', 'judged.decision') }}
    as bias_check
from decided
