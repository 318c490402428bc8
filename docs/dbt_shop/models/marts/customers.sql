with orders as (
    select customer_id, min(order_date) as first_order, max(order_date) as most_recent_order,
           count(*) as number_of_orders, sum(amount) as lifetime_value
    from {{ ref('orders') }}
    group by 1
)
select
    c.customer_id,
    c.first_name,
    c.last_name,
    c.zip,
    o.first_order,
    o.most_recent_order,
    coalesce(o.number_of_orders, 0) as number_of_orders,
    o.lifetime_value,
    '{{ var("segment_prefix") }}' || case when o.lifetime_value >= {{ var('big_spender', 40) }} then 'big' else 'small' end
        as segment,
    '{{ env_var("SHOP_REGION", "eu") }}' as region
from {{ ref('stg_customers') }} c
left join orders o using (customer_id)
