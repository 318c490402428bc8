{{ config(post_hook="insert into {{ target.schema }}.audit_log select '{{ this.identifier }}', count(*) from {{ this }}") }}
select
    o.order_id,
    o.customer_id,
    o.order_date,
    o.status,
    {% for method in payment_methods() -%}
    p.{{ method }}_amount,
    {% endfor -%}
    p.total_amount as amount
from {{ ref('stg_orders') }} o
left join {{ ref('order_payments') }} p using (order_id)
