with

source as (

    select * from {{ source('raw', 'conversions') }}

),

renamed as (

    select
        cast(conversion_id as {{ dbt.type_string() }}) as conversion_id,
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(occurred_at as {{ dbt.type_timestamp() }}) as converted_at,
        cast(occurred_at as date) as conversion_date,
        cast(revenue as {{ dbt.type_float() }}) as revenue

    from source

)

select * from renamed
