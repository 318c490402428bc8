{% test row_count_at_least(model, n) %}
select count(*) as rows_found from {{ model }} having count(*) < {{ n }}
{% endtest %}
