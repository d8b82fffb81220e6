{#-
  Credit per model, bootstrap bucket, campaign and channel: small enough for Python to resample.
  Every journey lies in exactly one bucket, so resampling buckets with replacement is a grouped
  bootstrap over journeys. Touches without credit are left out: absent rows mean zero.
-#}
{%- set buckets = attribution_bootstrap_buckets() -%}

with

-- Read twice below; inlined, so neither engine first copies the whole touch-level table into a
-- CTE buffer (PostgreSQL and DuckDB materialise a CTE used twice by default).
credit as {{ cte_materialization('not materialized') }} (

    select * from {{ ref('touchpoint_credit') }}

),

-- Summing per journey first makes `journeys` a plain count (a journey is one conversion), which
-- is cheaper than count(distinct) over touch rows, and leaves fewer rows to join to buckets.
journey_credit as (

    select
        model,
        journey_id,
        campaign_id,
        channel,
        sum(credit) as conversions,
        sum(credited_revenue) as revenue
    from credit
    where credit > 0
    group by model, journey_id, campaign_id, channel

),

journey_buckets as (

    -- One row per journey (its last touch under last_touch), so each MD5 is computed once.
    select
        journey_id,
        {{ attribution_journey_bucket('journey_id', buckets) }} as bucket
    from credit
    where model = 'last_touch'
        and touch_index = touch_count

)

select
    journey_credit.model,
    cast(journey_buckets.bucket as {{ dbt.type_int() }}) as bucket,
    journey_credit.campaign_id,
    journey_credit.channel,
    sum(journey_credit.conversions) as conversions,
    sum(journey_credit.revenue) as revenue,
    cast(count(*) as {{ dbt.type_bigint() }}) as journeys
from journey_credit
inner join journey_buckets
    on journey_buckets.journey_id = journey_credit.journey_id
group by journey_credit.model, journey_buckets.bucket, journey_credit.campaign_id, journey_credit.channel
