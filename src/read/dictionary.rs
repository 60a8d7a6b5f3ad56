//! The data dictionary: every table c360 exports, and each column's type,
//! meaning, the step that writes it and whether it is provenance (which
//! record, rule or person a value came from).
//!
//! This is the one place the output schema is written down. The exports
//! ([`crate::read::export`]) take their columns and column types from it,
//! `docs/schema.md` is generated from it ([`markdown`], checked by
//! `tests/schema.rs`), and a test builds the demo workspace and checks that
//! every documented column exists in SQLite with a compatible type and that
//! every column of an exported table is documented.

use serde_json::{Value, json};

/// A column's logical type: how SQLite stores it and how each export
/// format writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// An identifier or key: text, even when it is all digits (a CRM's
    /// numeric ids); read it as text.
    Id,
    /// A whole number.
    Int,
    /// A decimal number (amounts, scores, shares).
    Real,
    /// A yes/no flag: 0/1 in SQLite.
    Flag,
    /// A UTC time, ISO 8601 text in SQLite (`2024-03-05T14:22:05.000Z`).
    Time,
    /// A JSON document as text.
    Json,
    /// Several values packed in one text, `sep` between them; `item` names
    /// one value (the CSV child table's value column).
    List {
        sep: &'static str,
        item: &'static str,
    },
    /// The RFM scores as a code: SQLite keeps the three digits (`514`),
    /// exports write `R5F1M4` so no reader takes it for a number.
    Rfm,
    /// An original input row: text, or bytes that were not UTF-8 (a BLOB),
    /// exported as text with U+FFFD for the bytes that are not.
    Raw,
}

impl Kind {
    /// The name of the type in the dictionary.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Id => "id",
            Kind::Int => "integer",
            Kind::Real => "real",
            Kind::Flag => "boolean",
            Kind::Time => "timestamp",
            Kind::Json => "json",
            Kind::List { .. } => "list of text",
            Kind::Rfm => "rfm code",
            Kind::Raw => "raw row",
        }
    }

    /// The SQLite declared type the column has.
    pub fn sqlite(self) -> &'static str {
        match self {
            Kind::Int | Kind::Flag => "INTEGER",
            Kind::Real => "REAL",
            Kind::Raw => "BLOB",
            Kind::Text | Kind::Id | Kind::Time | Kind::Json | Kind::List { .. } | Kind::Rfm => {
                "TEXT"
            }
        }
    }

    /// The Parquet (Arrow) type exports write.
    pub fn parquet(self) -> &'static str {
        match self {
            Kind::Int => "Int64",
            Kind::Real => "Float64",
            Kind::Flag => "Boolean",
            Kind::Time => "Timestamp(ms, UTC)",
            Kind::List { .. } => "List(String)",
            Kind::Text | Kind::Id | Kind::Json | Kind::Rfm | Kind::Raw => "String",
        }
    }

    /// How CSV exports write it.
    pub fn csv(self) -> &'static str {
        match self {
            Kind::Int => "digits (`-12`)",
            Kind::Real => "decimal with a point (`12.0`, `0.25`)",
            Kind::Flag => "`true` / `false`",
            Kind::Time => "ISO 8601 UTC (`2024-03-05T14:22:05.000Z`)",
            Kind::List { .. } => "a child table `<table>__<column>.csv`: key, position, value",
            Kind::Rfm => "text `R5F1M4`",
            Kind::Text | Kind::Id | Kind::Json | Kind::Raw => "text (formula-guarded)",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Kind::Text => "free text",
            Kind::Id => "an identifier or key: text even when all digits (read it as text)",
            Kind::Int => "a whole number",
            Kind::Real => "a decimal number",
            Kind::Flag => "yes / no (0 / 1 in SQLite)",
            Kind::Time => "a UTC time (ISO 8601 text in SQLite)",
            Kind::Json => "a JSON document",
            Kind::List { .. } => "several values (packed in one text in SQLite)",
            Kind::Rfm => "RFM scores as one code (`514` in SQLite, `R5F1M4` in exports)",
            Kind::Raw => "the original input row (text; bytes that are not UTF-8 as U+FFFD)",
        }
    }

    const ALL: [Kind; 10] = [
        Kind::Text,
        Kind::Id,
        Kind::Int,
        Kind::Real,
        Kind::Flag,
        Kind::Time,
        Kind::Json,
        Kind::List { sep: ",", item: "" },
        Kind::Rfm,
        Kind::Raw,
    ];
}

/// Where a table's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A table of the workspace's SQLite database.
    Sqlite,
    /// Made at export time from the saved segments (`rules/segments.toml`)
    /// and the profiles.
    Segments,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub meaning: &'static str,
    /// Says which record, rule or person a value came from.
    pub provenance: bool,
    /// Kept in SQLite for the workbench, left out of exports.
    pub internal: bool,
    /// The step writing this column when it is not the table's.
    pub written_by: Option<&'static str>,
}

const fn col(name: &'static str, kind: Kind, meaning: &'static str) -> Column {
    Column {
        name,
        kind,
        meaning,
        provenance: false,
        internal: false,
        written_by: None,
    }
}

impl Column {
    const fn prov(mut self) -> Column {
        self.provenance = true;
        self
    }

    const fn internal(mut self) -> Column {
        self.internal = true;
        self
    }

    const fn by(mut self, step: &'static str) -> Column {
        self.written_by = Some(step);
        self
    }

    /// Written to the exports.
    pub fn exported(&self) -> bool {
        !self.internal
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub meaning: &'static str,
    /// The pipeline step (or command) that writes the table.
    pub written_by: &'static str,
    pub origin: Origin,
    /// The columns identifying a row (the key of a list column's CSV
    /// child table).
    pub key: &'static [&'static str],
    /// The order exports write rows in (SQL, may name internal columns).
    pub order_by: &'static str,
    pub columns: &'static [Column],
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The exported columns, in order.
    pub fn exported(&self) -> impl Iterator<Item = &'static Column> + use<> {
        self.columns.iter().filter(|c| c.exported())
    }

    /// The CSV child table of a list column: its name and columns (the
    /// table's key, `position` from 1, the value).
    pub fn child(&self, column: &Column) -> Option<(String, Vec<&'static str>)> {
        let Kind::List { item, .. } = column.kind else {
            return None;
        };
        let mut cols = self.key.to_vec();
        cols.push("position");
        cols.push(item);
        Some((format!("{}__{}", self.name, column.name), cols))
    }
}

// Steps, as the dictionary names them.
const LOAD: &str = "load (steps 1-2)";
const RESOLVE: &str = "resolve (step 4)";
const REVIEW: &str = "review (steward decisions)";
const UNIFY: &str = "unify (step 5)";
const ANALYSE: &str = "analyse (step 6)";

const PROFILES: &[Column] = &[
    col(
        "customer360_id",
        Kind::Id,
        "The customer's stable id (`C360-00000001`).",
    ),
    col(
        "anonymous",
        Kind::Flag,
        "True for a visitor only: no CRM record, no user or customer id, no e-mail.",
    ),
    col("name", Kind::Text, "Golden full name."),
    col("name_from", Kind::Id, "Record key the name was taken from.").prov(),
    col(
        "name_rule",
        Kind::Text,
        "Survivorship rule that chose the name (rules/survivorship.toml).",
    )
    .prov(),
    col("email", Kind::Text, "Golden e-mail address."),
    col(
        "email_from",
        Kind::Id,
        "Record key the e-mail was taken from.",
    )
    .prov(),
    col(
        "email_rule",
        Kind::Text,
        "Survivorship rule that chose the e-mail.",
    )
    .prov(),
    col(
        "phone",
        Kind::Text,
        "Golden phone number (E.164 when it could be read).",
    ),
    col(
        "phone_from",
        Kind::Id,
        "Record key the phone was taken from.",
    )
    .prov(),
    col(
        "phone_rule",
        Kind::Text,
        "Survivorship rule that chose the phone.",
    )
    .prov(),
    col(
        "country",
        Kind::Text,
        "Golden country (ISO 3166-1 alpha-2).",
    ),
    col(
        "country_from",
        Kind::Id,
        "Record key the country was taken from.",
    )
    .prov(),
    col(
        "country_rule",
        Kind::Text,
        "Survivorship rule that chose the country.",
    )
    .prov(),
    col("city", Kind::Text, "Golden city."),
    col("city_from", Kind::Id, "Record key the city was taken from.").prov(),
    col(
        "city_rule",
        Kind::Text,
        "Survivorship rule that chose the city.",
    )
    .prov(),
    col(
        "lifecycle_status",
        Kind::Text,
        "Golden lifecycle status (lead, prospect, active, lapsed, churned ...).",
    ),
    col(
        "lifecycle_from",
        Kind::Id,
        "Record key the lifecycle status was taken from.",
    )
    .prov(),
    col(
        "lifecycle_rule",
        Kind::Text,
        "Survivorship rule that chose the lifecycle status.",
    )
    .prov(),
    col(
        "lifecycle_history",
        Kind::Json,
        "Lifecycle changes, oldest first: a JSON array of {status, at, record}.",
    ),
    col("first_seen", Kind::Time, "Earliest event or CRM creation."),
    col("last_seen", Kind::Time, "Latest event."),
    col(
        "crm_ids",
        Kind::List {
            sep: ",",
            item: "crm_id",
        },
        "The customer's CRM customer ids, sorted.",
    )
    .prov(),
    col("crm_records", Kind::Int, "CRM records of the customer."),
    col(
        "web_events",
        Kind::Int,
        "Web and app events of the customer.",
    ),
    col(
        "transactions",
        Kind::Int,
        "Transaction rows (orders, refunds) of the customer.",
    ),
    col(
        "identifiers",
        Kind::Json,
        "Distinct identifier values per kind: a JSON object kind -> count.",
    ),
    col("orders", Kind::Int, "Orders (purchases)."),
    col("refunds", Kind::Int, "Refunds."),
    col(
        "revenue",
        Kind::Real,
        "Net revenue in the reporting currency (refunds negative).",
    ),
    col(
        "aov",
        Kind::Real,
        "Average order value: gross order revenue / orders.",
    ),
    col("first_order_at", Kind::Time, "First order."),
    col("last_order_at", Kind::Time, "Last order."),
    col(
        "favourite_category",
        Kind::Text,
        "Product category with the most revenue.",
    ),
    col(
        "sessions_30d",
        Kind::Int,
        "Sessions in the 30 days before as_of.",
    ),
    col(
        "sessions_90d",
        Kind::Int,
        "Sessions in the 90 days before as_of.",
    ),
    col(
        "page_views_30d",
        Kind::Int,
        "Page views in the 30 days before as_of.",
    ),
    col(
        "page_views_90d",
        Kind::Int,
        "Page views in the 90 days before as_of.",
    ),
    col(
        "key_events_30d",
        Kind::Int,
        "Key events (add to cart, checkout, purchase ...) in the 30 days before as_of.",
    ),
    col(
        "key_events_90d",
        Kind::Int,
        "Key events in the 90 days before as_of.",
    ),
    col("last_activity_at", Kind::Time, "Latest event or order."),
    col(
        "days_since_last_activity",
        Kind::Int,
        "Whole days from last_activity_at to as_of.",
    ),
    col(
        "rfm_recency",
        Kind::Int,
        "RFM recency score: 1 (long ago) .. 5 (recent), quintiles among customers with orders.",
    ),
    col(
        "rfm_frequency",
        Kind::Int,
        "RFM frequency score: 1 (few orders) .. 5 (many).",
    ),
    col(
        "rfm_monetary",
        Kind::Int,
        "RFM monetary score: 1 (low revenue) .. 5 (high).",
    ),
    col(
        "rfm_segment",
        Kind::Rfm,
        "The three RFM scores as one code: `R5F1M4` in exports (`514` in SQLite and in segment filters, `rfm = \"514\"`).",
    ),
    col(
        "churn_risk",
        Kind::Real,
        "Churn risk 0..1: the weights of the signals that fired (rules/profiles.toml), at most 1.",
    ),
    col(
        "churn_signals",
        Kind::List {
            sep: "; ",
            item: "churn_signal",
        },
        "The churn signals that fired, each with its figure (`inactive (348 > 60)`).",
    ),
    col(
        "as_of",
        Kind::Time,
        "The \"now\" the recency figures were computed against.",
    ),
    col("name_key", Kind::Text, "Search key: folded \"first last\".").internal(),
    col(
        "name_key_rev",
        Kind::Text,
        "Search key: folded \"last first\".",
    )
    .internal(),
    col(
        "row_hash",
        Kind::Int,
        "Hash of the row's content: a re-run rewrites only changed profiles.",
    )
    .internal(),
    col(
        "updated_at",
        Kind::Time,
        "When the profile row was last written.",
    ),
];

const EVENTS: &[Column] = &[
    col(
        "event_seq",
        Kind::Int,
        "Row number (export order); not stable across runs.",
    )
    .internal(),
    col(
        "customer360_id",
        Kind::Id,
        "The customer the event belongs to.",
    ),
    col("event_time", Kind::Time, "When it happened."),
    col(
        "event_name",
        Kind::Text,
        "Canonical name: page_view, purchase, refund, lifecycle:active ...",
    ),
    col(
        "system",
        Kind::Id,
        "System of the record: crm, web or transactions.",
    )
    .prov(),
    col("source", Kind::Id, "Source of the record (c360.toml).").prov(),
    col("record_id", Kind::Id, "The record's id in its source.").prov(),
    col(
        "record_key",
        Kind::Id,
        "system:source:record id of the record.",
    )
    .prov(),
    col("session_id", Kind::Id, "Web session id."),
    col("device_id", Kind::Id, "Device id."),
    col("cookie_id", Kind::Id, "Cookie / anonymous id."),
    col("user_id", Kind::Id, "Logged-in user id."),
    col(
        "order_id",
        Kind::Id,
        "Order id (orders, refunds, web purchases).",
    ),
    col("product_id", Kind::Id, "Product id."),
    col("category", Kind::Text, "Product category."),
    col(
        "revenue",
        Kind::Real,
        "Revenue in the reporting currency (orders and refunds; a web purchase with an order row has none).",
    ),
    col("currency", Kind::Id, "Currency of revenue (ISO 4217)."),
    col(
        "anonymous",
        Kind::Flag,
        "True when the web event carried no user id.",
    ),
    col(
        "properties",
        Kind::Json,
        "The event's other properties (JSON object).",
    ),
];

const ID_MAP: &[Column] = &[
    col(
        "record_key",
        Kind::Id,
        "system:source:record id of a record.",
    )
    .prov(),
    col(
        "system",
        Kind::Id,
        "System of the record: crm, web or transactions.",
    )
    .prov(),
    col("source", Kind::Id, "Source of the record (c360.toml).").prov(),
    col("record_id", Kind::Id, "The record's id in its source.").prov(),
    col(
        "customer360_id",
        Kind::Id,
        "The customer the record belongs to.",
    )
    .by("resolve (step 4); steward decisions re-cluster at once"),
];

const IDENTIFIERS: &[Column] = &[
    col(
        "identifier_id",
        Kind::Int,
        "Identifier number (identity_links refer to it).",
    ),
    col(
        "kind",
        Kind::Id,
        "Identifier kind: customer_id, email, phone, order_id, device_id, cookie_id ...",
    ),
    col("value", Kind::Id, "The normalised value."),
    col("records", Kind::Int, "Records carrying the value."),
    col(
        "status",
        Kind::Id,
        "What resolve did with it: linked, blocked, over_limit, shared.",
    ),
    col(
        "customers",
        Kind::Int,
        "Customers holding records with the value.",
    ),
];

const LINKS: &[Column] = &[
    col("record_key", Kind::Id, "The record.").prov(),
    col(
        "identifier_id",
        Kind::Int,
        "The identifier it carries (identifiers).",
    ),
    col(
        "rule",
        Kind::Text,
        "The rule (identifier kind) that read it, e.g. `device_id (nearest login)`.",
    )
    .prov(),
    col(
        "via_record",
        Kind::Id,
        "The record the identifier was attributed from (a shared device's nearest login).",
    )
    .prov(),
];

const CANDIDATES: &[Column] = &[
    col(
        "candidate_id",
        Kind::Int,
        "Pair id, kept across resolve runs.",
    ),
    col(
        "left_key",
        Kind::Id,
        "Record key of one record (the smaller).",
    ),
    col("right_key", Kind::Id, "Record key of the other."),
    col(
        "weight",
        Kind::Real,
        "Sum of the Fellegi-Sunter comparison weights (log2 m/u, bits).",
    ),
    col(
        "match_weight",
        Kind::Real,
        "log2 of the posterior odds (weight + prior); 0 is a coin flip.",
    ),
    col("probability", Kind::Real, "Match probability 0..1."),
    col("band", Kind::Id, "auto_merge or review."),
    col(
        "blocking",
        Kind::List {
            sep: ", ",
            item: "blocking_rule",
        },
        "The blocking rules that produced the pair.",
    )
    .prov(),
    col(
        "comparisons",
        Kind::Json,
        "Each comparison's level, weight and the two values (JSON array).",
    )
    .prov(),
    col(
        "flags",
        Kind::List {
            sep: ",",
            item: "flag",
        },
        "weak_bridge, refused (a cannot-link held).",
    ),
    col(
        "decision",
        Kind::Id,
        "The steward's latest decision on the pair: approve, reject or empty.",
    )
    .by(REVIEW),
];

const DECISIONS: &[Column] = &[
    col("decision_id", Kind::Int, "Decision number."),
    col("at", Kind::Time, "When it was made."),
    col("actor", Kind::Text, "Who made it.").prov(),
    col(
        "action",
        Kind::Id,
        "approve (must-link), reject (cannot-link) or split.",
    ),
    col(
        "pair_left",
        Kind::Id,
        "Record key of one record of the pair (approve, reject).",
    ),
    col("pair_right", Kind::Id, "Record key of the other."),
    col("reason", Kind::Text, "Why, as the steward wrote it."),
    col(
        "undone_at",
        Kind::Time,
        "When it was undone (empty: in force).",
    ),
    col("undone_by", Kind::Text, "Who undid it.").prov(),
    col("undo_reason", Kind::Text, "Why it was undone."),
    col(
        "bulk_id",
        Kind::Int,
        "Bulk the decision belongs to (a probability band decided at once).",
    ),
];

const MEMBERS: &[Column] = &[
    col(
        "decision_id",
        Kind::Int,
        "The decision (steward_decisions).",
    ),
    col(
        "side",
        Kind::Id,
        "a or b: a split keeps the records of side a apart from those of side b.",
    ),
    col("record_key", Kind::Id, "A record of that side."),
];

const AUDIT: &[Column] = &[
    col("audit_id", Kind::Int, "Entry number."),
    col("at", Kind::Time, "When."),
    col("actor", Kind::Text, "Who: a steward, `pipeline` or `c360`.").prov(),
    col(
        "action",
        Kind::Id,
        "What: resolve, unify, analyse, approve, reject, split, undo, bulk ...",
    ),
    col("detail", Kind::Text, "The whole entry as one line."),
    col(
        "subject",
        Kind::Text,
        "What the entry is about (records, pair, bulk).",
    ),
    col("reason", Kind::Text, "Why (a steward's reason)."),
    col(
        "change",
        Kind::Text,
        "What changed (customers merged, split, ids minted).",
    ),
    col(
        "decision_id",
        Kind::Int,
        "The decision it records (steward_decisions).",
    ),
    col("bulk_id", Kind::Int, "The bulk it records."),
];

const REJECTS: &[Column] = &[
    col("reject_id", Kind::Int, "Reject number."),
    col("batch_id", Kind::Int, "The load batch the row was read in.").prov(),
    col("source", Kind::Id, "The source (c360.toml).").prov(),
    col("row_num", Kind::Int, "Row number in the batch (from 1).").prov(),
    col("field", Kind::Id, "The field that failed."),
    col(
        "reason",
        Kind::Id,
        "Why: bad_timestamp, bad_json, missing_field, bad_timezone ...",
    ),
    col("detail", Kind::Text, "The value and what is wrong with it."),
    col("raw", Kind::Raw, "The original row as read.").prov(),
];

const LIFECYCLE: &[Column] = &[
    col(
        "month",
        Kind::Id,
        "Month (`2024-03`, the end of it), or `current` (from the profiles).",
    ),
    col("status", Kind::Id, "Lifecycle status."),
    col("customers", Kind::Int, "Customers with that status then."),
];

const ACTIVITY: &[Column] = &[
    col(
        "grain",
        Kind::Id,
        "day, week (ISO, starting Monday) or month.",
    ),
    col(
        "period",
        Kind::Id,
        "The period: `2024-03-05` (day; a week by its Monday), `2024-03` (month).",
    ),
    col(
        "revenue",
        Kind::Real,
        "Net revenue in the reporting currency.",
    ),
    col("orders", Kind::Int, "Orders."),
    col("refunds", Kind::Int, "Refunds."),
    col(
        "active_customers",
        Kind::Int,
        "Customers with any event or order.",
    ),
    col(
        "new_customers",
        Kind::Int,
        "Customers whose first order falls in the period.",
    ),
];

const COHORTS: &[Column] = &[
    col("cohort", Kind::Id, "First-purchase month (`2024-03`)."),
    col(
        "months_after",
        Kind::Int,
        "Months after the first purchase (0 = that month).",
    ),
    col("customers", Kind::Int, "Customers of the cohort."),
    col(
        "active",
        Kind::Int,
        "Of them, active (any event or order) that month.",
    ),
    col("share", Kind::Real, "active / customers."),
];

const CHURN: &[Column] = &[
    col("kind", Kind::Id, "band or signal."),
    col(
        "name",
        Kind::Text,
        "The risk band (`high (≥ 0.6)`) or the signal's name.",
    ),
    col(
        "customers",
        Kind::Int,
        "Customers in the band / with the signal.",
    ),
    col("revenue", Kind::Real, "Their revenue (revenue at risk)."),
];

const FUNNEL: &[Column] = &[
    col(
        "period",
        Kind::Id,
        "Days before \"now\": 30d, 90d, 365d or all.",
    ),
    col("step_no", Kind::Int, "Step number from 0."),
    col(
        "step",
        Kind::Id,
        "page_view, view_item, add_to_cart, begin_checkout, purchase.",
    ),
    col(
        "customers",
        Kind::Int,
        "Distinct customers doing the step in the period.",
    ),
];

const SEGMENTS: &[Column] = &[
    col("segment", Kind::Id, "The segment's name."),
    col(
        "filter",
        Kind::Text,
        "Its filter (the segment filter language).",
    )
    .prov(),
    col("description", Kind::Text, "Its description."),
    col(
        "customers",
        Kind::Int,
        "Profiles matching the filter at export time.",
    ),
];

const SEGMENT_MEMBERS: &[Column] = &[
    col("segment", Kind::Id, "The segment's name (segments)."),
    col("customer360_id", Kind::Id, "A profile matching its filter."),
];

const fn sqlite(
    name: &'static str,
    meaning: &'static str,
    written_by: &'static str,
    key: &'static [&'static str],
    order_by: &'static str,
    columns: &'static [Column],
) -> Table {
    Table {
        name,
        meaning,
        written_by,
        origin: Origin::Sqlite,
        key,
        order_by,
        columns,
    }
}

/// Every output table, in the order exports write and the dictionary lists
/// them.
pub const TABLES: &[Table] = &[
    sqlite(
        "customer360_profiles",
        "One row per customer: golden values with the record and rule they came from, activity, orders, RFM and churn risk.",
        "unify (step 5); a steward decision refreshes the customers it touches at once",
        &["customer360_id"],
        "customer360_id",
        PROFILES,
    ),
    sqlite(
        "customer360_events",
        "Every behavioural event (web and app events, orders and refunds, CRM lifecycle changes), each with its customer.",
        UNIFY,
        &["record_key"],
        "event_seq",
        EVENTS,
    ),
    sqlite(
        "customer360_id_map",
        "Every record and the customer it belongs to.",
        RESOLVE,
        &["record_key"],
        "record_key",
        ID_MAP,
    ),
    sqlite(
        "identifiers",
        "Every identifier value seen, and what resolve did with it.",
        RESOLVE,
        &["identifier_id"],
        "identifier_id",
        IDENTIFIERS,
    ),
    sqlite(
        "identity_links",
        "Record to identifier: which records share which values (the deterministic links).",
        RESOLVE,
        &["record_key", "identifier_id"],
        "record_key, identifier_id",
        LINKS,
    ),
    sqlite(
        "match_candidates",
        "Record pairs found by fuzzy blocking and scored (Fellegi-Sunter): the steward's review queue.",
        RESOLVE,
        &["candidate_id"],
        "candidate_id",
        CANDIDATES,
    ),
    sqlite(
        "steward_decisions",
        "Steward decisions: approve (must-link), reject (cannot-link), split; never deleted (undo sets undone_at).",
        REVIEW,
        &["decision_id"],
        "decision_id",
        DECISIONS,
    ),
    sqlite(
        "decision_members",
        "The records of each side of a decision.",
        REVIEW,
        &["decision_id", "side", "record_key"],
        "decision_id, side, record_key",
        MEMBERS,
    ),
    sqlite(
        "audit_log",
        "Append-only log of pipeline runs, identity changes and steward decisions.",
        "resolve, unify, analyse and every steward decision",
        &["audit_id"],
        "audit_id",
        AUDIT,
    ),
    sqlite(
        "rejects",
        "Input rows that could not be staged, with the reason and the original row.",
        LOAD,
        &["reject_id"],
        "reject_id",
        REJECTS,
    ),
    sqlite(
        "analytics_lifecycle",
        "Customers per lifecycle status at the end of each month, and now.",
        ANALYSE,
        &["month", "status"],
        "month, status",
        LIFECYCLE,
    ),
    sqlite(
        "analytics_activity",
        "Revenue, orders and active customers per day, week and month.",
        ANALYSE,
        &["grain", "period"],
        "grain, period",
        ACTIVITY,
    ),
    sqlite(
        "analytics_cohorts",
        "Retention: customers by first-purchase month and how many were active k months later.",
        ANALYSE,
        &["cohort", "months_after"],
        "cohort, months_after",
        COHORTS,
    ),
    sqlite(
        "analytics_churn",
        "Customers and revenue by churn-risk band and by signal.",
        ANALYSE,
        &["kind", "name"],
        "kind, name",
        CHURN,
    ),
    sqlite(
        "analytics_funnel",
        "Distinct customers reaching each funnel step within a period before \"now\".",
        ANALYSE,
        &["period", "step_no"],
        "period, step_no",
        FUNNEL,
    ),
    Table {
        name: "segments",
        meaning: "The saved segments (rules/segments.toml) and their sizes.",
        written_by: "the export, from rules/segments.toml",
        origin: Origin::Segments,
        key: &["segment"],
        order_by: "",
        columns: SEGMENTS,
    },
    Table {
        name: "segment_members",
        meaning: "Which profiles each saved segment holds (one row per segment and customer).",
        written_by: "the export, from rules/segments.toml and customer360_profiles",
        origin: Origin::Segments,
        key: &["segment", "customer360_id"],
        order_by: "",
        columns: SEGMENT_MEMBERS,
    },
];

/// A documented table by name.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// A markdown table cell: `|` escaped, no line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The dictionary as markdown (`docs/schema.md`).
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# Data dictionary\n\n");
    out.push_str(
        "Every table `c360` exports (`c360 export`, `export_all`) with its columns: type, \
         meaning, the step that writes it, and whether it is provenance (which record, rule \
         or person a value came from). Generated from `src/read/dictionary.rs`, which the \
         exports take their columns and types from; do not edit by hand: \
         `cargo run --release -- schema --format md > docs/schema.md` writes it again \
         (`tests/schema.rs` fails when it differs).\n\n",
    );
    out.push_str("## Types\n\n");
    out.push_str("| type | meaning | SQLite | Parquet | CSV |\n|---|---|---|---|---|\n");
    for k in Kind::ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            k.name(),
            cell(k.explain()),
            k.sqlite(),
            k.parquet(),
            cell(k.csv())
        ));
    }
    out.push_str(
        "\nTimes are UTC: Parquet timestamps are written with the zone `UTC` \
         (`isAdjustedToUTC = true`), CSV times end in `Z`. Columns marked *internal* are kept \
         in SQLite for the workbench and left out of exports. A list column is a \
         `List(String)` column in Parquet; CSV has no lists, so the main CSV file leaves it \
         out and a child table `<table>__<column>.csv` holds one value per row with the \
         table's key and the value's position (from 1).\n\n",
    );
    out.push_str("## Tables\n\n| table | rows | written by |\n|---|---|---|\n");
    for t in TABLES {
        out.push_str(&format!(
            "| [{}](#{}) | {} | {} |\n",
            t.name,
            t.name,
            cell(t.meaning),
            cell(t.written_by)
        ));
    }
    for t in TABLES {
        out.push_str(&format!("\n## {}\n\n{}\n\n", t.name, t.meaning));
        out.push_str(&format!("- written by: {}\n", t.written_by));
        out.push_str(&format!(
            "- key: {}\n",
            t.key
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if t.origin == Origin::Segments {
            out.push_str("- not a SQLite table: made by the export\n");
        }
        for c in t.columns.iter() {
            if let Some((child, cols)) = t.child(c) {
                out.push_str(&format!(
                    "- CSV child table of `{}`: `{child}.csv` ({})\n",
                    c.name,
                    cols.join(", ")
                ));
            }
        }
        out.push_str("\n| column | type | provenance | meaning |\n|---|---|---|---|\n");
        for c in t.columns {
            let mut meaning = c.meaning.to_string();
            if let Some(by) = c.written_by {
                meaning.push_str(&format!(" Written by {by}."));
            }
            if c.internal {
                meaning.push_str(" *Internal: not exported.*");
            }
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                c.name,
                c.kind.name(),
                if c.provenance { "yes" } else { "" },
                cell(&meaning)
            ));
        }
    }
    out
}

fn column_json(t: &Table, c: &Column) -> Value {
    let mut v = json!({
        "name": c.name,
        "type": c.kind.name(),
        "sqlite": c.kind.sqlite(),
        "parquet": c.kind.parquet(),
        "meaning": c.meaning,
        "provenance": c.provenance,
        "exported": c.exported(),
        "written_by": c.written_by.unwrap_or(t.written_by),
    });
    if let (Kind::List { sep, .. }, Some((child, cols))) = (c.kind, t.child(c)) {
        v["separator_in_sqlite"] = json!(sep);
        v["csv_child_table"] = json!({"name": child, "columns": cols});
    }
    v
}

/// The dictionary as JSON: `{"types": [...], "tables": [{name, meaning,
/// written_by, origin, key, columns: [{name, type, sqlite, parquet,
/// meaning, provenance, exported, written_by}]}]}`.
pub fn json() -> Value {
    let types: Vec<Value> = Kind::ALL
        .iter()
        .map(|k| {
            json!({
                "type": k.name(),
                "meaning": k.explain(),
                "sqlite": k.sqlite(),
                "parquet": k.parquet(),
                "csv": k.csv(),
            })
        })
        .collect();
    let tables: Vec<Value> = TABLES
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "meaning": t.meaning,
                "written_by": t.written_by,
                "origin": match t.origin {
                    Origin::Sqlite => "sqlite",
                    Origin::Segments => "segments",
                },
                "key": t.key,
                "columns": t.columns.iter().map(|c| column_json(t, c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"types": types, "tables": tables})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keys_are_exported_columns() {
        for (i, t) in TABLES.iter().enumerate() {
            assert!(
                TABLES[..i].iter().all(|u| u.name != t.name),
                "{} twice",
                t.name
            );
            for (j, c) in t.columns.iter().enumerate() {
                assert!(
                    t.columns[..j].iter().all(|d| d.name != c.name),
                    "{}.{} twice",
                    t.name,
                    c.name
                );
                assert!(
                    !c.meaning.is_empty(),
                    "{}.{} has no meaning",
                    t.name,
                    c.name
                );
            }
            for k in t.key {
                let c = t.column(k).unwrap_or_else(|| panic!("{}: key {k}", t.name));
                assert!(c.exported(), "{}: key {k} is internal", t.name);
            }
            if t.origin == Origin::Sqlite {
                assert!(!t.order_by.is_empty(), "{}", t.name);
            }
        }
    }

    #[test]
    fn markdown_and_json_list_every_column() {
        let md = markdown();
        let js = json();
        for t in TABLES {
            assert!(md.contains(&format!("\n## {}\n", t.name)), "{}", t.name);
            let jt = js["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == t.name)
                .unwrap();
            assert_eq!(jt["columns"].as_array().unwrap().len(), t.columns.len());
        }
        assert!(md.contains("| `crm_ids` | list of text | yes |"), "{md}");
        assert!(
            md.contains("`customer360_profiles__crm_ids.csv` (customer360_id, position, crm_id)")
        );
    }
}
