{% macro payment_methods() -%}
    {%- set methods = ['credit_card', 'coupon', 'bank_transfer', 'gift_card'] -%}
    {{ return(methods) }}
{%- endmacro %}
