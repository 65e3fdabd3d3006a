//! OpenAPI schemas for the types whose serde shape is written by hand (times, feature names;
//! ids have theirs in `id.rs`), so the agent's local API description says what they look like
//! on the wire.

use alloc::borrow::Cow;
use alloc::string::ToString;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use crate::feature::FeatureName;
use crate::time::UnixTime;

impl utoipa::PartialSchema for UnixTime {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
            .description(Some("An RFC 3339 UTC time to the second, e.g. \"2026-11-23T18:00:00Z\"."))
            .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}[Zz]$"))
            .into()
    }
}

impl utoipa::ToSchema for UnixTime {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("UnixTime")
    }
}

impl utoipa::PartialSchema for FeatureName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A feature the engine knows (signals may carry only the source features)."))
            .enum_values(Some(FeatureName::all().map(|f| f.as_str().to_string())))
            .into()
    }
}

impl utoipa::ToSchema for FeatureName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FeatureName")
    }
}
