//! The field table: every field of SEMANTICS §1, declared once.
//!
//! Each layer generates its own part from this one table (the "X-macro"
//! pattern): [`crate::record`] the [`crate::Record`] struct and its strict
//! decoding, [`crate::batch`] the per-field batch checks, [`crate::store`]
//! the columns, the row writes and clears, index upkeep, memory accounting,
//! `internal_validate` and the row view, and `api::render` the v1 and v3
//! item bodies. A field forgotten in one of those places cannot happen:
//! there are no such places.
//!
//! One entry reads
//!
//! ```text
//! /// docs (become the Record field's docs)
//! Variant field: RustType = presence => column [, bitmap B] [, order O]
//!     [, substring S] [, index I] [, v1 N] [, v3 N];
//! ```
//!
//! * `Variant`: the field's name in [`Field`]; `field`: its wire name and
//!   the `Record` member.
//! * `presence`: `required`, `default` (the type's default when absent:
//!   `None`, `0`, `false`, `{}`, `[]`), or a string literal for a string
//!   field's default.
//! * `column`: how the store keeps it: `Text` (unique strings, per-chunk
//!   buffers), `Dict` (dictionary codes), `Fixed` (enums, bools), `Int`
//!   (integers, packed per chunk), `Time` (microseconds), `Json` (opaque parts as validated JSON text),
//!   `Members` (the sparse sharing list).
//! * `bitmap B`: a roaring bitmap of rows per value, `BitmapKey::B`;
//!   `order O`: an ordered index (sort key or equality ranges),
//!   `OrderKey::O`; `substring S`: a trigram index over the distinct values,
//!   `TextField::S` (the field also needs `order S`: a value's rows are a
//!   range of it); `index I`: a derived index of type `I` (days, ip
//!   addresses, sharing, v1's `extend_info` keys).
//! * `v1 N` / `v3 N`: the field's position in v1's `CheckpointItem` / v3's
//!   `BackupResp` (SEMANTICS §6); absent: not rendered by that API.
//!
//! Consumers receive each entry normalised as
//! `{ Variant, field, Type, presence, column, [bitmap?], [order?],
//! [substring?], [index?], [v1?], [v3?], [docs…] }`, so that each matches
//! only what it needs.

/// Calls `$consumer! { {entry} {entry} … }` with every field of §1, in the
/// order of SEMANTICS §1 (the order records are decoded and validated in).
macro_rules! record_fields {
    ($consumer:ident) => {
        $crate::schema::record_fields! { @normalise $consumer;
            /// Unique id, 1..=255 bytes.
            Id id: String = required => Text, order Id, v1 0, v3 0;
            /// The checkpoint (restore point) this backup belongs to.
            CheckpointId checkpoint_id: String = required => Text, order CheckpointId, v1 1, v3 1;
            /// The owner project (tenant).
            ProjectId project_id: String = required => Dict, bitmap Project, v3 5;
            /// The enterprise project; `"0"` by default.
            EnterpriseProjectId enterprise_project_id: String = "0" => Dict, bitmap EnterpriseProject, v3 6;
            /// Backup name; may be empty.
            Name name: String = required => Dict, order Name, substring Name, v1 2, v3 2;
            /// Free text.
            Description description: String = "" => Dict, v1 3, v3 3;
            /// Lifecycle status.
            Status status: Status = required => Fixed, bitmap Status, order Status, v1 4, v3 4;
            /// The protected server or volume.
            ResourceId resource_id: String = required => Dict, order ResourceId, v1 5, v3 7;
            /// The protected resource's name.
            ResourceName resource_name: String = "" => Dict, order ResourceName, substring ResourceName, v3 8;
            /// Open set, e.g. `OS::Nova::Server`.
            ResourceType resource_type: String = required => Dict, bitmap ResourceType, v1 6, v3 9;
            /// Availability zone.
            ResourceAz resource_az: String = "" => Dict, bitmap ResourceAz, v3 10;
            /// Size in GB.
            ResourceSize resource_size: u64 = default => Int, v3 11;
            /// Backup or replica.
            ImageType image_type: ImageType = default => Fixed, bitmap ImageType, v3 12;
            /// The policy that made it.
            PolicyId policy_id: Option<String> = default => Dict, bitmap Policy;
            /// The vault holding it.
            VaultId vault_id: Option<String> = default => Dict, bitmap Vault, v3 13;
            /// The provider.
            ProviderId provider_id: Option<String> = default => Dict, v3 14;
            /// The parent backup.
            ParentId parent_id: Option<String> = default => Dict, v3 15;
            /// Dedicated-cloud backup.
            Dec dec: bool = default => Fixed, bitmap Dec;
            /// Creation time.
            CreatedAt created_at: Timestamp = required => Time, order CreatedAt, index DayIndex, v1 7, v3 16;
            /// Last update.
            UpdatedAt updated_at: Timestamp = required => Time, order UpdatedAt, index DayIndex, v1 8, v3 17;
            /// When the data was protected; `None` while not yet protected.
            ProtectedAt protected_at: Option<Timestamp> = default => Time, order ProtectedAt, index DayIndex, v1 9, v3 18;
            /// Expiry.
            ExpiredAt expired_at: Option<Timestamp> = default => Time, v3 19;
            /// Opaque, echoed back (v1 sets six keys of it from the record).
            ExtendInfo extend_info: Map<String, Value> = default => Json, index ExtendOverlap, v1 12, v3 20;
            /// Opaque, echoed back; `private_ip` and `eip` feed the `ip` filter.
            BackupData backup_data: Map<String, Value> = default => Json, index IpIndex, v1 10;
            /// Opaque, echoed back.
            ReplicationRecords replication_records: Vec<Value> = default => Json, v1 11, v3 21;
            /// Opaque, echoed back.
            Children children: Vec<Value> = default => Json, v3 22;
            /// The projects this backup is shared to, one entry per project.
            Members members: Vec<Member> = default => Members, index SharingIndex;
        }
    };
    (@normalise $consumer:ident;
        $(
            $(#[doc = $doc:literal])*
            $variant:ident $field:ident : $ty:ty = $presence:tt => $column:ident
            $(, bitmap $bitmap:ident)?
            $(, order $order:ident)?
            $(, substring $substring:ident)?
            $(, index $index:ident)?
            $(, v1 $v1:literal)?
            $(, v3 $v3:literal)?
            ;
        )*
    ) => {
        $consumer! {
            $( {
                $variant, $field, $ty, $presence, $column,
                [$($bitmap)?], [$($order)?], [$($substring)?], [$($index)?],
                [$($v1)?], [$($v3)?], [$($doc)*]
            } )*
        }
    };
}
pub(crate) use record_fields;

/// `Some(N)` for a given position, `None` for none.
macro_rules! position {
    () => {
        None
    };
    ($at:literal) => {
        Some($at)
    };
}
pub(crate) use position;

/// The `Field` enum and its names.
macro_rules! define_fields {
    ($( {
        $variant:ident, $field:ident, $ty:ty, $presence:tt, $column:ident,
        [$($bitmap:ident)?], [$($order:ident)?], [$($substring:ident)?], [$($index:ident)?],
        [$($v1:literal)?], [$($v3:literal)?], [$($doc:literal)*]
    } )*) => {
        /// A field of a record (SEMANTICS §1), in the order of §1.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Field {
            $( $variant, )*
        }

        impl Field {
            /// Every field, in the order of §1.
            pub(crate) const ALL: &'static [Field] = &[$( Field::$variant, )*];

            /// The field's wire name.
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $( Field::$variant => stringify!($field), )*
                }
            }

            /// Whether a response shows the field: it has a v1 or v3
            /// position, or v1 sets an `extend_info` key from it. Row views
            /// gather only these.
            pub(crate) const fn shown(self) -> bool {
                match self {
                    $( Field::$variant => {
                        let (v1, v3): (Option<usize>, Option<usize>) =
                            (position!($($v1)?), position!($($v3)?));
                        v1.is_some() || v3.is_some() || sets_v1_extend_key(Field::$variant)
                    } )*
                }
            }

            /// The field with this wire name.
            pub(crate) fn named(name: &str) -> Option<Field> {
                match name {
                    $( stringify!($field) => Some(Field::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

record_fields!(define_fields);

/// The keys v1 sets in `extend_info` (SEMANTICS §6), in the order it sets
/// them, each with the field its value comes from.
pub(crate) const V1_EXTEND_INFO: [(&str, Field); 6] = [
    ("resource_az", Field::ResourceAz),
    ("resource_name", Field::ResourceName),
    ("resource_type", Field::ResourceType),
    ("image_type", Field::ImageType),
    ("dec", Field::Dec),
    ("size", Field::ResourceSize),
];

const fn sets_v1_extend_key(field: Field) -> bool {
    let mut i = 0;
    while i < V1_EXTEND_INFO.len() {
        if V1_EXTEND_INFO[i].1 as usize == field as usize {
            return true;
        }
        i += 1;
    }
    false
}

/// The number of fields of a record.
pub(crate) const FIELD_COUNT: usize = Field::ALL.len();

/// Fields in the order of their positions (`Some(n)`: position `n`,
/// `None`: left out), for `LEN` positions given: how the renderers turn
/// the table's `v1 N` / `v3 N` into their item order at compile time.
/// A position given twice or out of range fails the build.
pub(crate) const fn rendered<const LEN: usize>(
    positions: [Option<usize>; FIELD_COUNT],
) -> [Field; LEN] {
    let mut out = [Field::Id; LEN];
    let mut filled = [false; LEN];
    let mut i = 0;
    while i < FIELD_COUNT {
        if let Some(at) = positions[i] {
            assert!(at < LEN, "a render position is out of range");
            assert!(!filled[at], "a render position is given twice");
            out[at] = Field::ALL[i];
            filled[at] = true;
        }
        i += 1;
    }
    let mut k = 0;
    while k < LEN {
        assert!(filled[k], "a render position is missing");
        k += 1;
    }
    out
}

/// How many positions are given.
pub(crate) const fn rendered_len(positions: [Option<usize>; FIELD_COUNT]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < FIELD_COUNT {
        if positions[i].is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_as_on_the_wire() {
        assert_eq!(FIELD_COUNT, 27);
        assert_eq!(Field::ALL[0].name(), "id");
        assert_eq!(Field::named("members"), Some(Field::Members));
        assert_eq!(Field::named("colour"), None);
        for &f in Field::ALL {
            assert_eq!(Field::named(f.name()), Some(f));
        }
    }

    #[test]
    fn responses_show_all_but_the_filter_only_fields() {
        let hidden: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| !f.shown())
            .map(|f| f.name())
            .collect();
        assert_eq!(hidden, ["policy_id", "members"]);
    }

    #[test]
    fn positions_become_an_order() {
        let mut positions = [None; FIELD_COUNT];
        positions[3] = Some(0);
        positions[1] = Some(1);
        assert_eq!(rendered_len(positions), 2);
        assert_eq!(rendered::<2>(positions), [Field::ALL[3], Field::ALL[1]]);
    }
}
