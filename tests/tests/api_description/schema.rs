//! A JSON value checked against a schema of the API description: the part of JSON Schema the
//! description uses (`$ref`, `type`, `enum`, `properties`, `required`, `additionalProperties`,
//! `propertyNames`, `items`, `oneOf`, `anyOf`, `allOf`, `minimum`, `minLength`, `maxLength`).
//! A keyword it does not know fails the check, so a schema it cannot judge is never passed.

use serde_json::Value;

/// Keywords that say nothing about which values fit.
const ANNOTATIONS: &[&str] = &["description", "format", "title", "example", "examples", "default", "deprecated"];

/// Checks `value` against `schema`, resolving `#/components/...` references in `document`;
/// the error names where in the value it failed and why.
pub fn check(document: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    check_at(document, schema, value, "$")
}

fn check_at(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        return Err(format!("{at}: the schema is not an object: {schema}"));
    };
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "$ref" => {
                let pointer = rule.as_str().and_then(|r| r.strip_prefix('#')).unwrap_or("");
                let target = document.pointer(pointer).ok_or_else(|| format!("{at}: unresolved $ref {rule}"))?;
                check_at(document, target, value, at)?;
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("{at}: bad type {rule}")),
                };
                if !types.iter().any(|t| is_type(value, t)) {
                    return Err(format!("{at}: {value} is not of type {rule}"));
                }
            }
            "enum" => {
                if !rule.as_array().is_some_and(|options| options.contains(value)) {
                    return Err(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "properties" | "required" | "additionalProperties" | "propertyNames" => {
                if let Some(object) = value.as_object() {
                    check_object(document, schema, keyword, object, at)?;
                }
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    check_at(document, rule, item, &format!("{at}[{i}]"))?;
                }
            }
            "oneOf" | "anyOf" | "allOf" => check_combined(document, keyword, rule, value, at)?,
            "minimum" => {
                if let (Some(n), Some(min)) = (value.as_f64(), rule.as_f64()) {
                    if n < min {
                        return Err(format!("{at}: {n} is below the minimum {min}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let (Some(s), Some(limit)) = (value.as_str(), rule.as_u64()) {
                    let n = s.chars().count() as u64;
                    if (keyword == "minLength" && n < limit) || (keyword == "maxLength" && n > limit) {
                        return Err(format!("{at}: {value} breaks {keyword} {limit}"));
                    }
                }
            }
            // Ids and times: their patterns are checked by the agent's own parsers.
            "pattern" => {}
            other if ANNOTATIONS.contains(&other) => {}
            other => return Err(format!("{at}: the check does not know the keyword {other:?}")),
        }
    }
    Ok(())
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn check_object(
    document: &Value,
    schema: &serde_json::Map<String, Value>,
    keyword: &str,
    object: &serde_json::Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    let properties = schema.get("properties").and_then(Value::as_object);
    match keyword {
        "properties" => {
            for (name, rule) in properties.into_iter().flatten() {
                if let Some(field) = object.get(name) {
                    check_at(document, rule, field, &format!("{at}.{name}"))?;
                }
            }
        }
        "required" => {
            for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    return Err(format!("{at}: the required field {name:?} is missing"));
                }
            }
        }
        "additionalProperties" => {
            let extra = object.iter().filter(|(name, _)| !properties.is_some_and(|p| p.contains_key(*name)));
            for (name, field) in extra {
                match &schema["additionalProperties"] {
                    Value::Bool(false) => return Err(format!("{at}: the field {name:?} is not in the schema")),
                    Value::Bool(true) => {}
                    rule => check_at(document, rule, field, &format!("{at}.{name}"))?,
                }
            }
        }
        _ => {
            for name in object.keys() {
                check_at(document, &schema["propertyNames"], &Value::String(name.clone()), &format!("{at}.{name}"))?;
            }
        }
    }
    Ok(())
}

fn check_combined(document: &Value, keyword: &str, rule: &Value, value: &Value, at: &str) -> Result<(), String> {
    let results: Vec<Result<(), String>> =
        rule.as_array().into_iter().flatten().map(|s| check_at(document, s, value, at)).collect();
    let fits = results.iter().filter(|r| r.is_ok()).count();
    let ok = match keyword {
        "oneOf" => fits == 1,
        "anyOf" => fits >= 1,
        _ => fits == results.len(),
    };
    if ok {
        Ok(())
    } else {
        let why: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        Err(format!(
            "{at}: {value} fits {fits} of the {keyword} schemas (need {}): {}",
            match keyword {
                "oneOf" => "exactly one",
                "anyOf" => "at least one",
                _ => "all",
            },
            why.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_check_fails_on_what_does_not_fit() {
        let doc = json!({"components": {"schemas": {"Id": {"type": "integer", "minimum": 0}}}});
        let schema = json!({"type": "object", "required": ["id"], "additionalProperties": false,
            "properties": {"id": {"$ref": "#/components/schemas/Id"}, "kind": {"enum": ["a", "b"]}}});
        assert!(check(&doc, &schema, &json!({"id": 1, "kind": "a"})).is_ok());
        for bad in [json!({"kind": "a"}), json!({"id": -1}), json!({"id": 1, "kind": "c"}), json!({"id": 1, "x": 0})] {
            assert!(check(&doc, &schema, &bad).is_err(), "{bad} should not fit");
        }
        let either = json!({"oneOf": [{"type": "string"}, {"type": ["string", "null"]}]});
        assert!(check(&doc, &either, &json!(null)).is_ok());
        assert!(check(&doc, &either, &json!("both")).is_err(), "fits two of oneOf");
        assert!(check(&doc, &json!({"unknownKeyword": 1}), &json!(1)).is_err());
    }
}
