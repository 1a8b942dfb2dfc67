//! The raw, borrowed view of one input record, shared by every shape.
//!
//! One struct holds the keys of all shapes (camelCase and snake_case), so a
//! JSON line is parsed exactly once and the shape is recognised from which
//! keys were present. Every field borrows from the input when it can.
//! Unknown keys are skipped without being materialised. The Parquet reader
//! fills the same struct from Arrow columns, so normalization is one code
//! path for every input format.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A scalar read leniently: Databricks writes the same field as a string in
/// one shape and a number in another (`workspaceId`, `orgId`,
/// `usage_quantity`, `requestParams` values), and fixtures in the wild do
/// both. Objects and arrays are skipped and reported as [`Loose::Nested`].
#[derive(Debug, Clone, PartialEq)]
pub enum Loose<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Nested,
}

impl<'a> Loose<'a> {
    /// The value as text when it is a string, without allocating.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer: a JSON integer or a string of digits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Loose::Int(n) => Some(*n),
            Loose::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => Some(*f as i64),
            Loose::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a float: a JSON number or a decimal string.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Loose::Int(n) => Some(*n as f64),
            Loose::Float(f) => Some(*f),
            Loose::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Loose::Null)
    }

    /// Writes a scalar as text into `dst` (numbers in decimal); nothing for
    /// null or nested values.
    pub fn write_to(&self, dst: &mut String) {
        use std::fmt::Write;
        match self {
            Loose::Str(s) => dst.push_str(s),
            Loose::Int(n) => {
                let _ = write!(dst, "{n}");
            }
            Loose::Float(f) => {
                let _ = write!(dst, "{f}");
            }
            Loose::Bool(b) => dst.push_str(if *b { "true" } else { "false" }),
            Loose::Null | Loose::Nested => {}
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map(Loose::Int).unwrap_or(Loose::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Loose::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Nested)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Nested)
            }
        }
        d.deserialize_any(V)
    }
}

/// A nested object that must be a JSON object. serde's derived structs
/// also accept arrays (fields by position); input that puts an array where
/// Databricks writes an object is a wrong type, not a positional record.
#[derive(Debug, Default)]
pub struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData)).map(Obj)
    }
}

impl<T> std::ops::Deref for Obj<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A string field that tolerates null and non-string scalars: `None` for
/// null/absent, the text otherwise. Used where a wrong type should not cost
/// the whole record (e.g. `sourceIPAddress: null`).
pub type Text<'a> = Option<Loose<'a>>;

/// `userIdentity` / `user_identity`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIdentity<'a> {
    #[serde(borrow)]
    pub email: Text<'a>,
    #[serde(borrow, alias = "subjectName")]
    pub subject_name: Text<'a>,
}

/// `identity_metadata` (system tables).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIdentityMetadata<'a> {
    #[serde(borrow)]
    pub run_as: Text<'a>,
    #[serde(borrow)]
    pub run_by: Text<'a>,
    #[serde(borrow)]
    pub acting_as: Text<'a>,
    #[serde(borrow)]
    pub owned_by: Text<'a>,
    #[serde(borrow)]
    pub created_by: Text<'a>,
}

/// `response`: `statusCode` when delivered, `status_code` in system tables.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawResponse<'a> {
    #[serde(borrow, alias = "statusCode")]
    pub status_code: Text<'a>,
    #[serde(borrow, alias = "errorMessage")]
    pub error_message: Text<'a>,
}

/// The request parameters the signals use. Both spellings are accepted
/// because audit delivery and `system.access.audit` differ per service.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawParams<'a> {
    // Securables.
    #[serde(borrow)]
    pub full_name_arg: Text<'a>,
    #[serde(borrow)]
    pub securable_full_name: Text<'a>,
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(borrow)]
    pub path: Text<'a>,
    #[serde(borrow, alias = "notebookId")]
    pub notebook_id: Text<'a>,
    #[serde(borrow, alias = "warehouseId")]
    pub warehouse_id: Text<'a>,
    #[serde(borrow, alias = "clusterId")]
    pub cluster_id: Text<'a>,
    #[serde(borrow)]
    pub scope: Text<'a>,
    #[serde(borrow)]
    pub key: Text<'a>,
    #[serde(borrow, alias = "mountPoint")]
    pub mount_point: Text<'a>,
    // Targets of admin, group and login actions.
    #[serde(borrow, alias = "targetUserName")]
    pub target_user_name: Text<'a>,
    #[serde(borrow)]
    pub principal: Text<'a>,
    #[serde(borrow)]
    pub user: Text<'a>,
    #[serde(borrow, alias = "targetGroupName")]
    pub target_group_name: Text<'a>,
    /// How a login authenticated (`authentication_method` in some exports).
    #[serde(borrow, alias = "authenticationMethod")]
    pub authentication_method: Text<'a>,
    /// The Delta Sharing recipient of a data request (which names no user).
    #[serde(borrow, alias = "recipientName")]
    pub recipient_name: Text<'a>,
    // Access changes: Unity Catalog permission changes (a JSON string of
    // `[{principal, add, remove}]`), the SCIM endpoint of a delete, the role
    // of `modifyUserRole`.
    #[serde(borrow)]
    pub changes: Text<'a>,
    #[serde(borrow)]
    pub endpoint: Text<'a>,
    #[serde(borrow)]
    pub role: Text<'a>,
    /// The new owner of `changeOwner`.
    #[serde(borrow)]
    pub owner: Text<'a>,
    // Jobs.
    #[serde(borrow, alias = "jobId")]
    pub job_id: Text<'a>,
    #[serde(borrow, alias = "runId")]
    pub run_id: Text<'a>,
    #[serde(borrow, alias = "jobTerminalState")]
    pub job_terminal_state: Text<'a>,
}

/// `usage_metadata` of a billing row.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawUsageMetadata<'a> {
    #[serde(borrow)]
    pub job_id: Text<'a>,
    #[serde(borrow)]
    pub job_run_id: Text<'a>,
    #[serde(borrow)]
    pub cluster_id: Text<'a>,
    #[serde(borrow)]
    pub warehouse_id: Text<'a>,
    #[serde(borrow)]
    pub notebook_id: Text<'a>,
    #[serde(borrow)]
    pub dlt_pipeline_id: Text<'a>,
    #[serde(borrow)]
    pub endpoint_name: Text<'a>,
}

/// `pricing` of a list-price row.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPricing<'a> {
    #[serde(borrow)]
    pub default: Text<'a>,
}

/// One input record, any shape. Absent keys stay `None`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRecord<'a> {
    // --- audit events. The delivered logs spell the keys in camelCase,
    // `system.access.audit` in snake_case: one field takes both spellings
    // (a record is one or the other), so the struct the parser fills for
    // every line stays small. The time key tells the shapes apart.
    /// Epoch ms: delivered logs only.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
    /// `system.access.audit` (and lineage rows) only.
    #[serde(borrow)]
    pub event_time: Text<'a>,
    #[serde(borrow)]
    pub event_id: Text<'a>,
    #[serde(borrow, alias = "serviceName")]
    pub service_name: Text<'a>,
    #[serde(borrow, alias = "actionName")]
    pub action_name: Text<'a>,
    #[serde(borrow, alias = "requestId")]
    pub request_id: Text<'a>,
    #[serde(borrow, alias = "sourceIPAddress")]
    pub source_ip_address: Text<'a>,
    #[serde(borrow, alias = "userAgent")]
    pub user_agent: Text<'a>,
    #[serde(borrow, alias = "userIdentity")]
    pub user_identity: Option<Obj<RawIdentity<'a>>>,
    #[serde(borrow, alias = "requestParams")]
    pub request_params: Option<Obj<RawParams<'a>>>,
    #[serde(borrow)]
    pub identity_metadata: Option<Obj<RawIdentityMetadata<'a>>>,
    #[serde(borrow, alias = "auditLevel")]
    pub audit_level: Text<'a>,

    // --- shared by both audit shapes ---
    #[serde(borrow)]
    pub response: Option<Obj<RawResponse<'a>>>,
    /// `workspace_id` in every system table, `workspaceId` in delivered logs.
    #[serde(borrow, alias = "workspaceId")]
    pub workspace_id: Text<'a>,

    // --- system.billing.usage ---
    #[serde(borrow)]
    pub record_id: Text<'a>,
    #[serde(borrow)]
    pub sku_name: Text<'a>,
    #[serde(borrow)]
    pub usage_quantity: Text<'a>,
    #[serde(borrow)]
    pub usage_start_time: Text<'a>,
    #[serde(borrow)]
    pub usage_end_time: Text<'a>,
    #[serde(borrow)]
    pub usage_metadata: Option<Obj<RawUsageMetadata<'a>>>,
    /// `ORIGINAL`, `RETRACTION` or `RESTATEMENT`.
    #[serde(borrow)]
    pub record_type: Text<'a>,

    // --- system.billing.list_prices ---
    #[serde(borrow)]
    pub price_start_time: Text<'a>,
    #[serde(borrow)]
    pub price_end_time: Text<'a>,
    #[serde(borrow)]
    pub pricing: Option<Obj<RawPricing<'a>>>,

    // --- system.lakeflow.job_run_timeline ---
    #[serde(borrow)]
    pub job_id: Text<'a>,
    #[serde(borrow)]
    pub run_id: Text<'a>,
    #[serde(borrow)]
    pub period_start_time: Text<'a>,
    #[serde(borrow)]
    pub period_end_time: Text<'a>,
    #[serde(borrow)]
    pub result_state: Text<'a>,

    // --- system.access.table_lineage ---
    #[serde(borrow)]
    pub source_table_full_name: Text<'a>,
    #[serde(borrow)]
    pub target_table_full_name: Text<'a>,
    #[serde(borrow)]
    pub created_by: Text<'a>,
    #[serde(borrow)]
    pub entity_type: Text<'a>,
    #[serde(borrow)]
    pub statement_id: Text<'a>,
}
