{#
  conversation_prompt(messages): what the judge is given as the instruction of a staged row.
  A single user turn (with or without a system prompt) is its text, exactly as for orca-style pairs; a longer
  conversation is the record separator chr(30) followed by its messages as JSON, which the judge's tasks
  show turn by turn before the responses (prefclean/judge/tasks.py: conversation_turns).
#}
{% macro conversation_prompt(messages) -%}
  case when len(list_filter({{ messages }}, lambda m: m.role <> 'system')) <= 1 then {{ messages }}[-1].content
       else chr(30) || to_json({{ messages }})::varchar end
{%- endmacro %}
