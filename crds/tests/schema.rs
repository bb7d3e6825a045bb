//! Properties of the generated schemas that `kubectl explain` and the API server rely on.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};

fn root(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every CRD has a schema")
}

/// Calls `visit` with the path and schema of every property under `schema`.
fn walk(path: &str, schema: &JSONSchemaProps, visit: &mut dyn FnMut(&str, &JSONSchemaProps)) {
    for (name, property) in schema.properties.iter().flatten() {
        let path = format!("{path}.{name}");
        visit(&path, property);
        walk(&path, property, visit);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
        walk(&format!("{path}[]"), items, visit);
    }
}

#[test]
fn every_field_has_a_description() {
    for crd in oem_crds::all_crds() {
        walk(&crd.spec.names.kind, root(&crd), &mut |path, schema| {
            let described = schema
                .description
                .as_deref()
                .is_some_and(|d| !d.trim().is_empty());
            assert!(described, "{path} has no description for kubectl explain");
        });
    }
}

#[test]
fn no_schema_uses_references_or_nullable() {
    for crd in oem_crds::all_crds() {
        let json = serde_json::to_string(&crd).expect("serialisable");
        assert!(!json.contains("$ref"), "{} has a $ref", crd.spec.names.kind);
        assert!(
            !json.contains("\"nullable\""),
            "{} has nullable",
            crd.spec.names.kind
        );
    }
}

#[test]
fn every_kind_is_in_the_hosting_category_with_a_short_name_and_status() {
    for crd in oem_crds::all_crds() {
        let names = &crd.spec.names;
        assert_eq!(
            names.categories.as_deref(),
            Some(&["hosting".to_owned()][..])
        );
        assert!(names.short_names.as_ref().is_some_and(|s| !s.is_empty()));
        // A DomainClaim is a plain record with nothing observed: the end user's status says
        // which of its domains it serves.
        if names.kind == "DomainClaim" {
            assert!(
                root(&crd)
                    .properties
                    .as_ref()
                    .is_some_and(|p| !p.contains_key("status"))
            );
            continue;
        }
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        );
        let status = root(&crd)
            .properties
            .as_ref()
            .and_then(|p| p.get("status"))
            .expect("status");
        let fields = status.properties.as_ref().expect("status fields");
        assert!(fields.contains_key("conditions") && fields.contains_key("observedGeneration"));
    }
}

#[test]
fn every_list_and_string_under_a_cel_rule_is_bounded() {
    // The API server refuses rules whose estimated cost is unbounded; bounding every list and
    // every string below a rule keeps the estimate finite.
    fn check(path: &str, schema: &JSONSchemaProps) {
        match schema.type_.as_deref() {
            Some("array") => assert!(schema.max_items.is_some(), "{path} has no maxItems"),
            Some("string") if schema.enum_.is_none() && schema.format.is_none() => {
                assert!(schema.max_length.is_some(), "{path} has no maxLength")
            }
            _ => {}
        }
    }
    for crd in oem_crds::all_crds() {
        walk(&crd.spec.names.kind, root(&crd), &mut |path, schema| {
            if schema.x_kubernetes_validations.is_some() {
                check(path, schema);
                walk(path, schema, &mut |inner, s| check(inner, s));
            }
        });
    }
}
