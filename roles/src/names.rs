//! [`named!`]: an enum whose every value has one name, used by serde (the wire, TOML), clap
//! (the command line) and the store (`as_str` / `parse`), declared once.

/// Declares an enum whose every variant has one name, used by serde, clap and the store.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $name:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, clap::ValueEnum,
        )]
        pub enum $ty {
            $( $(#[$vmeta])* #[serde(rename = $name)] #[value(name = $name)] $variant, )+
        }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The value's name in the store, on the wire and on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            pub fn parse(s: &str) -> Option<$ty> {
                $ty::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// A comma-separated list of names (empty items skipped); an unknown one is named.
            pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<$ty>, String> {
                items
                    .iter()
                    .flat_map(|i| i.as_ref().split(','))
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(|i| {
                        $ty::parse(i).ok_or_else(|| format!("unknown `{i}` (one of {})", $ty::names()))
                    })
                    .collect()
            }

            /// The names, for error messages (`one of a, b, c`).
            pub fn names() -> String {
                $ty::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        // By hand, not derived: utoipa's derive does not read a `serde(rename)` whose name
        // comes through this macro (it documented `Admin` for `admin`, found by schemathesis).
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($name),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($ty))
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
