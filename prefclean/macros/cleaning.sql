{#
  prefclean's built-in cleaning macros: any project can call these in its models (a project macro of the
  same name replaces one). They turn judgments of a shuffled pair back into ratings of `chosen` and
  `rejected`, and into a decision: keep, flip or drop, with the reason.
#}

{# A list with one judgment per named judge: the panel. `judges` is a list of judge names. #}
{% macro judge_panel(instruction, generations, judges=['default'], aspect='overall-rating', reverse=false) -%}
  [{% for j in judges %}{{ judge(instruction, generations, aspect=aspect, judge=j, reverse=reverse) }}{{ ", " if not loop.last }}{% endfor %}]
{%- endmacro %}

{# True when a judgment's error says its request was not sent: the judge's budget (or --max-cost) was spent.
   Not a failure: the next build judges it. #}
{% macro not_judged_budget(error) -%}
  coalesce({{ error }} = 'not judged: budget', false)
{%- endmacro %}

{# True when every judgment in a list succeeded (an empty list counts as done). #}
{% macro judgments_ok(judgments) -%}
  coalesce(list_bool_and(list_transform({{ judgments }}, lambda j: j.error is null)), true)
{%- endmacro %}

{# The rating a judgment gave the response labelled `label` ('chosen' or 'rejected'), undoing the shuffle.
   For a judgment made on the reversed list, pass reversed=true. #}
{% macro rating_of(judgment, order, label, reversed=false) -%}
  {%- if reversed -%}
  list_reverse({{ judgment }}.ratings)[list_position({{ order }}, '{{ label }}')]
  {%- else -%}
  {{ judgment }}.ratings[list_position({{ order }}, '{{ label }}')]
  {%- endif -%}
{%- endmacro %}

{% macro rationale_of(judgment, order, label, reversed=false) -%}
  {%- if reversed -%}
  list_reverse({{ judgment }}.rationales)[list_position({{ order }}, '{{ label }}')]
  {%- else -%}
  {{ judgment }}.rationales[list_position({{ order }}, '{{ label }}')]
  {%- endif -%}
{%- endmacro %}

{# Thresholds reach SQL as text: a var set to "one" would become `>= one`, a Binder error far from its cause.
   `param` is the macro's argument, `var` the example's var that sets it. #}
{% macro _kind(value) -%}
  {%- if value is none %}null{% elif value is boolean %}a boolean{% elif value is string %}a string
  {%- elif value is mapping %}a mapping{% elif value is iterable %}a list{% elif value is number %}a number
  {%- else %}something else{% endif -%}
{%- endmacro %}

{% macro expect_number(value, param, var=none) -%}
  {%- if value is boolean or value is not number -%}
    {{ exceptions.raise_compiler_error(param ~ " must be a number, got " ~ (value | tojson) ~ " (" ~ _kind(value)
       ~ "): set var '" ~ (var or param) ~ "' to a number (prefclean.yml `vars:` or --vars)") }}
  {%- endif -%}
{%- endmacro %}

{% macro expect_boolean(value, param, var=none) -%}
  {%- if value is not boolean -%}
    {{ exceptions.raise_compiler_error(param ~ " must be true or false, got " ~ (value | tojson) ~ " (" ~ _kind(value)
       ~ "): set var '" ~ (var or param) ~ "' to true or false (prefclean.yml `vars:` or --vars)") }}
  {%- endif -%}
{%- endmacro %}

{#
  The position-bias check (var check_position_bias): true judges every pair again with the responses swapped,
  false never, 'uncertain' only the pairs where a swap could change the decision:
  - close: the panel's mean ratings of the two responses at most `margin` (var bias_check_margin) apart. Position
    bias sits where the quality gap is small ("Judging the Judges", arXiv 2406.07791);
  - kept: the first pass alone would keep (or flip) the pair. A pair it drops (a tie, both poor, rejected
    preferred without allow_flip, a split panel) is dropped whatever the swap says. Decided by pair_decision
    itself with `keep` (decision_settings(): the same thresholds pair_decisions decides with);
  - with direction 'auto', in the judge's favoured position: see bias_tilt. 'both' re-checks either way.
  A pair not re-checked passes the bias check. bias_check_mode returns {'mode': 'all'|'uncertain'|'off',
  'margin': k, 'direction': 'auto'|'both', 'keep': {...}}. Called without `keep` (a project's judged_pairs from
  before), 'uncertain' re-checks every close pair, as it did then, under its old signature.
#}
{% macro bias_check_mode(check, margin=1, direction='auto', keep=none) -%}
  {#- checked in every mode: a wrong margin beside `true` is a mistake waiting for the day it is switched on -#}
  {{- expect_number(margin, 'bias_check_margin') -}}
  {%- if margin < 0 -%}
    {{ exceptions.raise_compiler_error("bias_check_margin must be 0 or more, got " ~ margin
       ~ ": set var 'bias_check_margin' (prefclean.yml `vars:` or --vars)") }}
  {%- endif -%}
  {%- if direction not in ('auto', 'both') -%}
    {{ exceptions.raise_compiler_error("bias_check_direction must be 'auto' or 'both', got " ~ (direction | tojson)
       ~ ": set var 'bias_check_direction' (prefclean.yml `vars:` or --vars)") }}
  {%- endif -%}
  {%- if check is sameas true -%}{{ return({'mode': 'all', 'margin': none, 'direction': none, 'keep': none}) }}
  {%- elif check is sameas false -%}{{ return({'mode': 'off', 'margin': none, 'direction': none, 'keep': none}) }}
  {%- elif check == 'uncertain' -%}
    {{ return({'mode': 'uncertain', 'margin': margin, 'direction': direction if keep else 'both', 'keep': keep}) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("check_position_bias must be true, false or 'uncertain', got "
       ~ (check | tojson) ~ ": set var 'check_position_bias' (prefclean.yml `vars:` or --vars)") }}
  {%- endif -%}
{%- endmacro %}

{# The bias check as it goes into a row's judge signature: true and false as they always were (a warehouse
   judged before 'uncertain' existed keeps its judgments), 'uncertain<=k' with its margin, and for the check on
   kept pairs what decides "kept" and the direction: a change re-evaluates every row (the cache answers the
   passes already asked), and a row whose swapped pass was skipped is complete under the same signature. #}
{% macro bias_check_signature(bias) -%}
  {%- if bias.mode == 'all' %}True{% elif bias.mode == 'off' %}False{% else %}uncertain<={{ bias.margin }}
  {%- if bias.keep %};kept:min_margin={{ bias.keep.min_margin }},poor_max={{ bias.keep.poor_max }},min_agreement=
  {{- bias.keep.min_agreement }},allow_flip={{ bias.keep.allow_flip }};direction={{ bias.direction }}{% endif %}
  {%- endif -%}
{%- endmacro %}

{# pair_decisions re-decides with its own settings whether a pair the uncertain check skipped was rightly skipped;
   judged_pairs skipped it with the settings it was built with. Built apart (`-s pair_decisions` with other
   --vars), a pair judged_pairs left unchecked because those settings dropped it would be kept here with no
   swapped pass and the reason 'against_tilt'. Refused instead, saying what to rebuild. #}
{% macro expect_bias_check_current(bias, judged, pairs) -%}
  {%- if bias.mode == 'uncertain' and bias.keep -%}  {#- run_query: None while parsing -#}
    {%- set current = (judge_identity(var('judges'), var('aspect')) ~ '|bias=' ~ bias_check_signature(bias))
                      | replace("'", "''") -%}
    {%- set stale = run_query("select count(*) from " ~ judged ~ " where judged_with is distinct from '" ~ current
                              ~ "' and pair_id in (select pair_id from " ~ pairs ~ ")") -%}
    {%- if stale and stale.rows[0][0] > 0 -%}
      {{ exceptions.raise_compiler_error(stale.rows[0][0] ~ " pairs of judged_pairs were judged with other settings "
         ~ "(judges, aspect, bias check or decision thresholds) than this build's, so its uncertain bias check "
         ~ "skipped other pairs: build judged_pairs too (prefclean build -s judged_pairs+; the judgment cache "
         ~ "answers what was asked before)") }}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

{# The decision settings from the project's vars, as pair_decision's keyword arguments: pair_decisions decides
   with them and the uncertain bias check's "would the first pass keep it" too, so the two cannot differ. #}
{% macro decision_settings() -%}
  {{ return({'min_margin': var('min_margin'), 'poor_max': var('poor_max'), 'min_agreement': var('min_agreement'),
             'allow_flip': var('allow_flip'), 'drop_biased': var('drop_position_biased')}) }}
{%- endmacro %}

{# `prefclean plan` gives a verdict it cannot know this raw answer (as a tie, for the upper bound) or this error
   (for the requests sent whatever the verdicts): the check re-checks the first in both directions and never
   leans on the second. Keep in step with prefclean/judge/plan.py UNKNOWN. #}
{% macro plan_unknown() %}not judged: plan, verdict unknown{% endmacro %}

{# The gap between two mean ratings, as the thresholds compare it. A panel's means are fractions (thirds for three
   judges) whose floating-point difference misses the exact one: 8/3 - 5/3 is 0.9999999999999998, a tie at
   min_margin 1 though every judge rated chosen a point higher. Rounded to 9 places: far finer than any mean of
   1-5 ratings can differ, far coarser than the rounding. #}
{% macro rating_gap(first_rating, second_rating) -%}
  round(abs({{ first_rating }} - {{ second_rating }}), 9)
{%- endmacro %}

{% macro close_verdict(first_rating, second_rating, margin) -%}
  {{ rating_gap(first_rating, second_rating) }} <= {{ margin }}
{%- endmacro %}

{# The position (1 or 2) a judgment rated higher, 0 for a tie. #}
{% macro winning_position(judgment) -%}
  case when {{ judgment }}.ratings[1] > {{ judgment }}.ratings[2] then 1
       when {{ judgment }}.ratings[2] > {{ judgment }}.ratings[1] then 2 else 0 end
{%- endmacro %}

{#
  A judge's position tilt from its first passes. The pairs are shuffled, so a fair judge's decisive verdicts
  favour position 1 and position 2 equally: with n1 and n2 of them, z = (n1 - n2) / sqrt(n1 + n2) is about
  normal under that. The tilt is significant when n1 + n2 >= 30 and |z| > 2.58 (two-sided, 1%: a fair judge is
  seldom taken for a biased one, and a real tilt passes it easily at scale, z growing as the square root of the
  verdicts); then the judge favours the position that won more. A directional bias can only flip a verdict whose winner sat in the
  favoured position (the swap moves it into the other, and the bonus to the loser), so only those are re-checked;
  with no significant tilt, both are. Returns the SQL expression of the favoured position: 1, 2 or 0 (none).
#}
{% macro position_tilt(first_wins, second_wins) -%}
  case when {{ first_wins }} + {{ second_wins }} >= 30
        and abs({{ first_wins }} - {{ second_wins }}) / sqrt({{ first_wins }} + {{ second_wins }}) > 2.58
       then case when {{ first_wins }} > {{ second_wins }} then 1 else 2 end
       else 0 end
{%- endmacro %}

{# A select of each judge's tilt over the first passes in `sample` (a relation with a `judgments` column):
   judge, first_wins, second_wins, favoured (1, 2, 0 none, -1 none that can be leant on: `prefclean plan`'s
   first run, which does not know every verdict, re-checks neither direction; with its tie stand-ins both). #}
{% macro bias_tilt(sample) -%}
  select judge, first_wins, second_wins,
    case when stand_ins > 0 then 0 when unknown > 0 then -1
         else {{ position_tilt('first_wins', 'second_wins') }} end as favoured
  from (
    select j.judge as judge,
      count(*) filter (where j.error is null and {{ winning_position('j') }} = 1) as first_wins,
      count(*) filter (where j.error is null and {{ winning_position('j') }} = 2) as second_wins,
      count(*) filter (where j.error is null and j.raw = '{{ plan_unknown() }}') as stand_ins,
      count(*) filter (where j.error = '{{ plan_unknown() }}') as unknown
    from (select unnest(judgments) as j from {{ sample }})
    group by all
  )
{%- endmacro %}

{# The decision the first pass alone gives (pair_decision's struct): the panel's mean ratings of `chosen` and
   `rejected` (undoing the shuffle through `order`, as pair_ratings does) and its agreement, as pair_decisions
   computes them. `keep`: decision_settings(). #}
{% macro first_pass_decision(judgments, order, keep) -%}
  {%- set verdicts -%}
    list_transform({{ judgments }}, lambda j: {{ verdict(rating_of('j', order, 'chosen') ~ ' - ' ~ rating_of('j', order, 'rejected'), keep.min_margin) }})
  {%- endset -%}
  {{ pair_decision('list_avg(list_transform(' ~ judgments ~ ', lambda j: ' ~ rating_of('j', order, 'chosen') ~ '))',
                   'list_avg(list_transform(' ~ judgments ~ ', lambda j: ' ~ rating_of('j', order, 'rejected') ~ '))',
                   failed='not ' ~ judgments_ok(judgments),
                   agreement='coalesce(list_max(list_transform(list_distinct(' ~ verdicts ~ '), lambda v: len(list_filter('
                             ~ verdicts ~ ', lambda x: x = v))))::double / len(' ~ judgments ~ '), 0)',
                   **keep) }}
{%- endmacro %}

{#
  Why a pair's swapped pass is or is not run, in 'uncertain' mode: 'swapped', 'clear' (not close), 'would_drop'
  (the first pass drops it anyway), 'against_tilt' (every judge's winner sat against its tilt), or
  'first_pass_failed' (no verdict to check; the next build judges it). `favoured` is a list of the favoured
  positions (bias_tilt) of the judges named in `tilted`, for direction 'auto'. A plan stand-in is re-checked.
#}
{% macro bias_check_status(judgments, order, bias, tilted='[]::varchar[]', favoured='[]::integer[]') -%}
  {%- set lean -%}
    list_bool_or(list_transform({{ judgments }}, lambda j: coalesce(({{ favoured }})[list_position({{ tilted }}, j.judge)], 0) = 0
      or ({{ favoured }})[list_position({{ tilted }}, j.judge)] = {{ winning_position('j') }}
      or ({{ favoured }})[list_position({{ tilted }}, j.judge)] > 0 and {{ winning_position('j') }} = 0))
  {%- endset -%}
  case
    when not {{ judgments_ok(judgments) }} or len({{ judgments }}) = 0 then 'first_pass_failed'
    when list_bool_or(list_transform({{ judgments }}, lambda j: coalesce(j.raw = '{{ plan_unknown() }}', false)))
      then 'swapped'
    when not coalesce({{ close_verdict('list_avg(list_transform(' ~ judgments ~ ', lambda j: j.ratings[1]))',
                                       'list_avg(list_transform(' ~ judgments ~ ', lambda j: j.ratings[2]))', bias.margin) }}, false)
      then 'clear'
    {%- if bias.keep %}
    when struct_extract({{ first_pass_decision(judgments, order, bias.keep) }}, 'decision') = 'drop' then 'would_drop'
    {%- endif %}
    {%- if bias.direction == 'auto' %}
    when not coalesce({{ lean }}, true) then 'against_tilt'
    {%- endif %}
    else 'swapped'
  end
{%- endmacro %}

{# True when a first pass (a panel's judgments of a pair) is uncertain enough to be judged again swapped:
   bias_check_status says 'swapped'. #}
{% macro bias_check_needed(judgments, bias, order='"order"', tilted='[]::varchar[]', favoured='[]::integer[]') -%}
  ({{ bias_check_status(judgments, order, bias, tilted, favoured) }}) = 'swapped'
{%- endmacro %}

{# The audit's account of a pair's bias check (pair_decisions.bias_check), from its panel's columns: 'swapped',
   'off', 'first_pass_failed', or in 'uncertain' mode why the swapped pass was skipped ('clear', 'would_drop',
   'against_tilt'), as bias_check_status decided it: a skipped, judged pair that is close and that the first pass
   keeps was skipped for the tilt. `decision`: the judges' decision (with no swapped pass, the first pass's). #}
{% macro bias_check_reason(bias, checked, failed, chosen_rating, rejected_rating, decision) -%}
  case when coalesce({{ checked }}, false) then 'swapped'
  {%- if bias.mode == 'off' %}
       when {{ failed }} is not null then 'off'
  {%- endif %}
       when coalesce({{ failed }}, true) then 'first_pass_failed'
  {%- if bias.mode == 'uncertain' %}
       when not coalesce({{ close_verdict(chosen_rating, rejected_rating, bias.margin) }}, false) then 'clear'
    {%- if bias.keep %}
       when {{ decision }} = 'drop' then 'would_drop'
       else 'against_tilt'
    {%- else %}
       else 'clear'
    {%- endif %}
  {%- endif %}
  end
{%- endmacro %}

{# True when a judged row's bias check is complete under the current mode (the incremental filter): its swapped
   pass succeeded, or it needs none. On kept pairs, a row with no swapped pass was skipped by a build with this
   signature (a pass that was asked and failed, or not sent, is a judgment with an error, never NULL), so it is
   complete: its skip is not decided again with a tilt that has moved since. #}
{% macro bias_check_done(judgments, reversed, bias) -%}
  {%- if bias.mode == 'off' -%}true
  {%- elif bias.mode == 'all' -%}({{ reversed }} is not null and {{ judgments_ok(reversed) }})
  {%- elif bias.keep -%}({{ reversed }} is null or {{ judgments_ok(reversed) }})
  {%- else -%}(({{ reversed }} is not null and {{ judgments_ok(reversed) }})
    or ({{ reversed }} is null and not {{ bias_check_needed(judgments, bias) }}))
  {%- endif -%}
{%- endmacro %}

{#
  escalate: (a judge's `escalate: {to, margin}` in prefclean.yml, see prefclean/judge/escalation.py): the stronger
  judge is asked about a pair when the first judgment is unsure: its two highest ratings at most `margin` apart (the
  uncertain bias check's notion of close), or its answer could not be read. A request that was not sent (budget, a
  batch still pending, `prefclean plan`'s stand-in) is not unsure: the next build judges it. The plan's run with
  every unknown verdict a tie shows the most the stronger judge may be sent.
#}
{% macro escalation_needed(judgment, margin) -%}
  {{- expect_number(margin, 'escalate.margin') -}}
  coalesce(case
    when {{ judgment }}.error is not null
      then not starts_with({{ judgment }}.error, 'not judged')
    else list_sort({{ judgment }}.ratings, 'DESC')[1] - list_sort({{ judgment }}.ratings, 'DESC')[2] <= {{ margin }}
  end, true)
{%- endmacro %}

{# Per panel member, the judge it escalates to (NULL for none), as a SQL list: index it with the member's position. #}
{% macro escalation_targets(judges) -%}
  [{% for e in judge_escalation(judges) %}{% if e.to %}'{{ e.to | replace("'", "''") }}'{% else %}null{% endif %}{{ ", " if not loop.last }}{% endfor %}]::varchar[]
{%- endmacro %}

{# Which response a margin (chosen - rejected) favours: 'chosen', 'rejected' or 'tie'. #}
{% macro verdict(margin, min_margin=1) -%}
  {{- expect_number(min_margin, 'min_margin') -}}
  case when {{ margin }} is null then null
       when {{ margin }} >= {{ min_margin }} then 'chosen'
       when {{ margin }} <= -{{ min_margin }} then 'rejected'
       else 'tie' end
{%- endmacro %}

{#
  pair_decision(...) -> STRUCT(decision VARCHAR, reason VARCHAR), checked in this order:
    not_judged_budget a request was not sent: the budget was spent (next build)  -> drop
    batch_pending     a judgment waits in a provider batch (not judged yet)       -> drop (the next build decides)
    judge_failed      a judgment is missing (error, unparsed)                    -> drop
    judges_disagree   the panel's verdicts differ (agreement below the threshold)  -> drop
    position_bias     the verdict changed when the responses were swapped        -> drop (unless drop_biased=false)
    both_poor         neither response rated above poor_max                      -> drop
    tie               |margin| below min_margin                                  -> drop
    judge_prefers_rejected                                                       -> flip if allow_flip, else drop
    judge_agrees                                                                 -> keep
#}
{% macro pair_decision(chosen_rating, rejected_rating, failed='false', agreement='1.0', position_flipped='false',
                       min_margin=1, poor_max=2, min_agreement=1.0, allow_flip=false, drop_biased=true,
                       not_judged='false', pending='false') -%}
  {{- expect_number(min_margin, 'min_margin') }}{{ expect_number(poor_max, 'poor_max') -}}
  {{- expect_number(min_agreement, 'min_agreement') }}{{ expect_boolean(allow_flip, 'allow_flip') -}}
  {{- expect_boolean(drop_biased, 'drop_biased', 'drop_position_biased') -}}
  case
    when coalesce({{ not_judged }}, false)
      then {'decision': 'drop', 'reason': 'not_judged_budget'}
    when coalesce({{ pending }}, false)
      then {'decision': 'drop', 'reason': 'batch_pending'}
    when {{ failed }} or {{ chosen_rating }} is null or {{ rejected_rating }} is null
      then {'decision': 'drop', 'reason': 'judge_failed'}
    when {{ agreement }} < {{ min_agreement }}
      then {'decision': 'drop', 'reason': 'judges_disagree'}
    {% if drop_biased %}
    when coalesce({{ position_flipped }}, false)
      then {'decision': 'drop', 'reason': 'position_bias'}
    {% endif %}
    when greatest({{ chosen_rating }}, {{ rejected_rating }}) <= {{ poor_max }}
      then {'decision': 'drop', 'reason': 'both_poor'}
    when {{ rating_gap(chosen_rating, rejected_rating) }} < {{ min_margin }}
      then {'decision': 'drop', 'reason': 'tie'}
    when {{ rejected_rating }} > {{ chosen_rating }}
      then {'decision': '{{ "flip" if allow_flip else "drop" }}', 'reason': 'judge_prefers_rejected'}
    else {'decision': 'keep', 'reason': 'judge_agrees'}
  end
{%- endmacro %}

{# The DPO-ready columns of an audited pair: flipped pairs swap chosen and rejected (and their ratings). #}
{% macro dpo_columns(alias='d') -%}
  {{ alias }}.pair_id,
  {{ alias }}.system,
  {{ alias }}.instruction as prompt,
  case when {{ alias }}.decision = 'flip' then {{ alias }}.rejected else {{ alias }}.chosen end as chosen,
  case when {{ alias }}.decision = 'flip' then {{ alias }}.chosen else {{ alias }}.rejected end as rejected,
  case when {{ alias }}.decision = 'flip' then {{ alias }}.rejected_rating else {{ alias }}.chosen_rating end as chosen_rating,
  case when {{ alias }}.decision = 'flip' then {{ alias }}.chosen_rating else {{ alias }}.rejected_rating end as rejected_rating,
  case when {{ alias }}.decision = 'flip' then {{ alias }}.rejected_rationale else {{ alias }}.chosen_rationale end as chosen_rationale,
  case when {{ alias }}.decision = 'flip' then {{ alias }}.chosen_rationale else {{ alias }}.rejected_rationale end as rejected_rationale,
  {{ alias }}.judge_models as judge_model,
  {{ alias }}.decision
{%- endmacro %}
