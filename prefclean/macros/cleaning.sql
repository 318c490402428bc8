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
  false never, 'uncertain' only the pairs whose first verdict is close: the panel's mean ratings of the two
  responses at most `margin` (var bias_check_margin) apart. Position bias sits where the quality gap is small
  ("Judging the Judges", arXiv 2406.07791), so that is where the second pass earns its cost. A pair not
  re-checked passes the bias check. bias_check_mode returns {'mode': 'all'|'uncertain'|'off', 'margin': k}.
#}
{% macro bias_check_mode(check, margin=1) -%}
  {#- checked in every mode: a wrong margin beside `true` is a mistake waiting for the day it is switched on -#}
  {{- expect_number(margin, 'bias_check_margin') -}}
  {%- if margin < 0 -%}
    {{ exceptions.raise_compiler_error("bias_check_margin must be 0 or more, got " ~ margin
       ~ ": set var 'bias_check_margin' (prefclean.yml `vars:` or --vars)") }}
  {%- endif -%}
  {%- if check is sameas true -%}{{ return({'mode': 'all', 'margin': none}) }}
  {%- elif check is sameas false -%}{{ return({'mode': 'off', 'margin': none}) }}
  {%- elif check == 'uncertain' -%}
    {{ return({'mode': 'uncertain', 'margin': margin}) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("check_position_bias must be true, false or 'uncertain', got "
       ~ (check | tojson) ~ ": set var 'check_position_bias' (prefclean.yml `vars:` or --vars)") }}
  {%- endif -%}
{%- endmacro %}

{# The bias check as it goes into a row's judge signature: true and false as they always were (a warehouse
   judged before 'uncertain' existed keeps its judgments), 'uncertain<=k' with its margin. #}
{% macro bias_check_signature(bias) -%}
  {%- if bias.mode == 'all' %}True{% elif bias.mode == 'off' %}False{% else %}uncertain<={{ bias.margin }}{% endif -%}
{%- endmacro %}

{# True when a first pass (a panel's judgments of a pair) is uncertain enough to be judged again swapped:
   every judgment succeeded and the panel's mean ratings of the two responses are at most the margin apart. #}
{% macro bias_check_needed(judgments, bias) -%}
  coalesce({{ judgments_ok(judgments) }} and abs(
      list_avg(list_transform({{ judgments }}, lambda j: j.ratings[1]))
    - list_avg(list_transform({{ judgments }}, lambda j: j.ratings[2]))) <= {{ bias.margin }}, false)
{%- endmacro %}

{# True when a judged row's bias check is complete under the current mode (the incremental filter): its swapped
   pass succeeded, or it needs none. #}
{% macro bias_check_done(judgments, reversed, bias) -%}
  {%- if bias.mode == 'off' -%}true
  {%- elif bias.mode == 'all' -%}({{ reversed }} is not null and {{ judgments_ok(reversed) }})
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
    when abs({{ chosen_rating }} - {{ rejected_rating }}) < {{ min_margin }}
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
