//! Closed sets of words a project file chooses from (`runtime = "kubernetes"`,
//! `restart = "on-failure"`). Each is one enum declared through [`choice!`], which spells every
//! word once: the schema's list of choices ([`Ty::Choice`](crate::schema::Ty::Choice)), the
//! resolver's parsing (`FromStr`) and the serialised form all come from it.

/// A word that is none of a choice's; the schema check reports it with its location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("\"{word}\" is not one of {}", crate::schema::quoted_list(.choices))]
pub struct UnknownChoice {
    pub word: String,
    pub choices: &'static [&'static str],
}

/// Declares a fieldless enum with the word each variant is written as, and gives it `NAMES`
/// (the words in declaration order, which is the order the schema lists them in), `as_str`,
/// `Display`, `FromStr` and serde's string form. `default = Variant;` after the enum makes it
/// the `Default` and `DEFAULT` (which the schema's field shows as its default).
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $word:literal, )+
        }
        $( default = $default:ident; )?
    ) => {
        $(
            impl $name {
                /// What a project that does not choose gets.
                pub const DEFAULT: $name = $name::$default;
            }

            impl ::std::default::Default for $name {
                fn default() -> $name {
                    $name::DEFAULT
                }
            }
        )?

        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every word, in declaration order: the schema's list of choices.
            pub const NAMES: &'static [&'static str] = &[$($word),+];

            /// The word as a project file writes it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::choice::UnknownChoice;

            fn from_str(word: &str) -> Result<Self, Self::Err> {
                match word {
                    $( $word => Ok($name::$variant), )+
                    _ => Err($crate::choice::UnknownChoice {
                        word: word.to_owned(),
                        choices: Self::NAMES,
                    }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let word = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                word.parse()
                    .map_err(|_| <D::Error as ::serde::de::Error>::unknown_variant(&word, Self::NAMES))
            }
        }
    };
}

pub(crate) use choice;

#[cfg(test)]
mod tests {
    use crate::environment::{OnFailure, Protocol, Restart, Runtime};

    #[test]
    fn each_word_reads_back_as_its_variant() {
        for word in Runtime::NAMES {
            assert_eq!(word.parse::<Runtime>().map(Runtime::as_str), Ok(*word));
        }
        for word in Protocol::NAMES {
            assert_eq!(word.parse::<Protocol>().map(Protocol::as_str), Ok(*word));
        }
        for word in Restart::NAMES {
            assert_eq!(word.parse::<Restart>().map(Restart::as_str), Ok(*word));
        }
        for word in OnFailure::NAMES {
            assert_eq!(word.parse::<OnFailure>().map(OnFailure::as_str), Ok(*word));
        }
    }

    #[test]
    fn the_serialised_form_is_the_word() {
        assert_eq!(
            serde_json::to_value(Restart::OnFailure).ok(),
            Some(serde_json::json!("on-failure"))
        );
        assert_eq!(
            serde_json::from_str::<Runtime>("\"kubernetes\"").ok(),
            Some(Runtime::Kubernetes)
        );
        let error = serde_json::from_str::<Protocol>("\"udp\"")
            .err()
            .map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some("unknown variant `udp`, expected `http` or `tcp`")
        );
    }
}
