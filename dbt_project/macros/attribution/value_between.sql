{#- Rows whose value lies outside [min_value, max_value] (nulls are left to not_null) are failures. -#}
{% test value_between(model, column_name, min_value, max_value) %}
select {{ column_name }} as bad_value
from {{ model }}
where {{ column_name }} < {{ min_value }}
    or {{ column_name }} > {{ max_value }}
{% endtest %}
