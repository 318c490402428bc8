select zip, count(*) as customers from {{ ref('stg_customers') }} group by zip
