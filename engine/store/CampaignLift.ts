/**
 * The `campaign_lift` view (spec/clickhouse.md): per journey × arm, every version of the journey
 * pooled, each arm compared with the journey's `control` arm on the goal.
 *
 * - Intent to treat: `enrolled` counts every member enrolled in the arm, whatever happened to their
 *   messages; a member counts once per arm however often they entered, and converts once.
 * - `lift` = p_arm / p_control − 1; its 95% interval from the log risk ratio,
 *   exp(ln RR ± 1.96·sqrt(1/x_v − 1/n_v + 1/x_c − 1/n_c)) − 1; `p_value_raw` from the pooled
 *   two-proportion z-test (two-sided, erfc); `p_value` Holm-adjusted across the arms that share the
 *   control. Undefined statistics (no control, no conversions on a side) are NULL, never ±inf/nan.
 * - Sample-ratio check: each arm's size against the size its planned weight predicts, given the
 *   versions members entered (journey_variants, written by the engine). A chi-squared test with one
 *   degree of freedom of the arm against the rest; `srm_flag` when p < 0.001. NULL when a version
 *   members entered has no plan recorded.
 * - The program's global control group never enters marketing journeys (Machine/Entry.ts), so it
 *   has no rows here: every arm, control included, is drawn from the members outside it, and the
 *   planned weights are shares of those entrants.
 *
 * Plain SQL for chDB and a ClickHouse server of the same major. Joins wrap the joined side in
 * ifNull so the result is the same whatever the server's `join_use_nulls`; journey_variants is
 * deduplicated with GROUP BY rather than FINAL because it is joined.
 */

export const CAMPAIGN_LIFT = "campaign_lift"

export const campaignLiftSelect = `WITH
  -- one row per member and arm: the enrollment's immutable columns, so FINAL only saves work
  arm_members AS (
    SELECT journey_id, variant, member_id, argMin(journey_version, entered_at) AS first_version
    FROM journey_enrollments FINAL
    GROUP BY journey_id, variant, member_id
  ),
  arm_sizes AS (
    SELECT journey_id, variant, count() AS members FROM arm_members GROUP BY journey_id, variant
  ),
  arm_conversions AS (
    SELECT journey_id, variant, uniqExact(member_id) AS converters FROM conversions FINAL GROUP BY journey_id, variant
  ),
  -- one purchase can convert two enrollments of a member (one ended, one active): its amount counts once
  arm_revenue AS (
    SELECT journey_id, variant, sum(goal_value) AS goal_revenue
    FROM (
      SELECT journey_id, variant, member_id, event_id, any(value) AS goal_value
      FROM conversions FINAL
      GROUP BY journey_id, variant, member_id, event_id
    )
    GROUP BY journey_id, variant
  ),
  arm_plan AS (
    SELECT journey_id, journey_version, variant, any(weight_percent) AS planned_weight
    FROM journey_variants
    GROUP BY journey_id, journey_version, variant
  ),
  version_sizes AS (
    SELECT journey_id, first_version, count() AS version_members FROM arm_members GROUP BY journey_id, first_version
  ),
  journey_sizes AS (
    SELECT
      journey_id,
      sum(version_members) AS journey_members,
      sumIf(version_members, (journey_id, first_version) IN (SELECT journey_id, journey_version FROM arm_plan)) AS planned_members
    FROM version_sizes
    GROUP BY journey_id
  ),
  -- the members each arm should have: per version entered, its members × the arm's planned share
  arm_expected AS (
    SELECT s.journey_id AS journey_id, p.variant AS variant, sum(s.version_members * p.planned_weight / 100) AS expected_members
    FROM version_sizes AS s
    INNER JOIN arm_plan AS p ON p.journey_id = s.journey_id AND p.journey_version = s.first_version
    GROUP BY journey_id, variant
  ),
  -- arms with members, and planned arms nobody entered (an arm left empty is a mismatch too)
  arm_keys AS (
    SELECT journey_id, variant FROM arm_sizes
    UNION DISTINCT
    SELECT journey_id, variant FROM arm_expected WHERE expected_members > 0
  ),
  arms AS (
    SELECT
      k.journey_id AS journey_id,
      k.variant AS variant,
      ifNull(sz.members, 0) AS n,
      ifNull(cv.converters, 0) AS x,
      ifNull(rv.goal_revenue, 0) AS arm_revenue,
      ifNull(ex.expected_members, 0) AS expected,
      ifNull(js.journey_members, 0) AS journey_n,
      ifNull(js.planned_members, 0) = ifNull(js.journey_members, 0) AS plan_known
    FROM arm_keys AS k
    LEFT JOIN arm_sizes AS sz ON sz.journey_id = k.journey_id AND sz.variant = k.variant
    LEFT JOIN arm_conversions AS cv ON cv.journey_id = k.journey_id AND cv.variant = k.variant
    LEFT JOIN arm_revenue AS rv ON rv.journey_id = k.journey_id AND rv.variant = k.variant
    LEFT JOIN arm_expected AS ex ON ex.journey_id = k.journey_id AND ex.variant = k.variant
    LEFT JOIN journey_sizes AS js ON js.journey_id = k.journey_id
  ),
  compared AS (
    SELECT
      a.journey_id AS journey_id,
      a.variant AS variant,
      a.n AS n_v,
      a.x AS x_v,
      a.arm_revenue AS arm_revenue,
      a.expected AS expected,
      a.journey_n AS journey_n,
      a.plan_known AS plan_known,
      ifNull(c.n, 0) AS n_c,
      ifNull(c.x, 0) AS x_c,
      a.variant != 'control' AND n_c > 0 AND n_v > 0 AS comparable,
      x_v / n_v AS p_v,
      x_c / n_c AS p_c,
      (x_v + x_c) / (n_v + n_c) AS p_pooled,
      if(comparable AND x_c > 0, p_v / p_c - 1, NULL) AS arm_lift,
      if(comparable AND x_v > 0 AND x_c > 0, sqrt(1 / x_v - 1 / n_v + 1 / x_c - 1 / n_c), NULL) AS log_rr_se,
      if(comparable AND p_pooled > 0 AND p_pooled < 1,
        erfc(abs(p_v - p_c) / sqrt(p_pooled * (1 - p_pooled) * (1 / n_v + 1 / n_c)) / sqrt(2)),
        NULL) AS p_raw,
      expected / journey_n AS planned_share,
      if(plan_known AND journey_n > 0,
        if(planned_share <= 0 OR planned_share >= 1,
          if(abs(n_v - expected) < 0.5, 1, 0),
          erfc(sqrt(pow(n_v - expected, 2) / (expected * (1 - planned_share)) / 2))),
        NULL) AS srm_p
    FROM arms AS a
    LEFT JOIN (SELECT journey_id, n, x FROM arms WHERE variant = 'control') AS c ON c.journey_id = a.journey_id
  ),
  -- Holm: the k-th smallest of m p-values is multiplied by m − k + 1, then made monotone
  ranked AS (
    SELECT
      *,
      countIf(p_raw IS NOT NULL) OVER (PARTITION BY journey_id) AS holm_m,
      row_number() OVER (PARTITION BY journey_id ORDER BY p_raw ASC NULLS LAST) AS holm_k
    FROM compared
  ),
  holm AS (
    SELECT
      *,
      max((toInt64(holm_m) - toInt64(holm_k) + 1) * p_raw) OVER (
        PARTITION BY journey_id ORDER BY p_raw ASC NULLS LAST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS holm_running
    FROM ranked
  )
SELECT
  journey_id,
  variant,
  n_v AS enrolled,
  x_v AS converted,
  if(n_v > 0, p_v, NULL) AS conversion_rate,
  arm_revenue AS revenue,
  if(n_v > 0, toFloat64(arm_revenue) / n_v, NULL) AS revenue_per_member,
  arm_lift AS lift,
  exp(log(p_v / p_c) - 1.96 * log_rr_se) - 1 AS lift_ci_low,
  exp(log(p_v / p_c) + 1.96 * log_rr_se) - 1 AS lift_ci_high,
  if(p_raw IS NULL, NULL, least(1, holm_running)) AS p_value,
  p_raw AS p_value_raw,
  n_c AS control_enrolled,
  x_c AS control_converted,
  if(plan_known AND journey_n > 0, 100 * planned_share, NULL) AS planned_percent,
  if(journey_n > 0, 100 * n_v / journey_n, NULL) AS observed_percent,
  srm_p AS srm_p_value,
  ifNull(srm_p < 0.001, 0) AS srm_flag
FROM holm
ORDER BY journey_id, variant != 'control', variant`
