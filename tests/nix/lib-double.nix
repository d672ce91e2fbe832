# A TEST DOUBLE of the few nixpkgs `lib` functions that
# nixos-modules/zeta-creds-restore.nix (and default.nix's module wrapper)
# use. nixpkgs cannot be fetched on our build machines, so tests/nix/run.sh
# evaluates the module against this instead.
#
# It is a double, not a substitute: it mimics the *shape* of what nixpkgs
# returns (option declarations as attribute sets tagged `_type = "option"`,
# `mkIf` as `{ _type = "if"; condition; content; }`, types with `name`,
# `description` and `check`), and the type checks the module relies on,
# closely enough to catch a wrong type, a missing description or an
# assertion that never fires. It does not merge definitions from several
# modules, apply priorities or render units. The real module system runs in
# the flake's `checks.module-eval` (tests/nix/nixpkgs-eval.nix) on machines
# that have nixpkgs.
#
# Only what the module uses is here; using anything else makes the
# evaluation fail with "attribute missing", which is the point.
let
  inherit (builtins)
    all
    concatStringsSep
    elem
    isAttrs
    isBool
    isInt
    isList
    isString
    map
    ;

  mkOptionType =
    {
      name,
      description,
      check,
      descriptionClass ? "noun",
    }:
    {
      _type = "option-type";
      inherit
        name
        description
        check
        descriptionClass
        ;
    };

  types = {
    str = mkOptionType {
      name = "str";
      description = "string";
      check = isString;
    };
    bool = mkOptionType {
      name = "bool";
      description = "boolean";
      check = isBool;
    };
    package = mkOptionType {
      name = "package";
      description = "package";
      check = x: isAttrs x && (x.type or null) == "derivation";
    };
    nullOr =
      t:
      mkOptionType {
        name = "nullOr";
        description = "null or ${t.description}";
        check = x: x == null || t.check x;
      };
    enum =
      values:
      mkOptionType {
        name = "enum";
        description = "one of ${concatStringsSep ", " (map (v: "\"${v}\"") values)}";
        check = x: elem x values;
      };
    listOf =
      t:
      mkOptionType {
        name = "listOf";
        description = "list of ${t.description}";
        check = x: isList x && all t.check x;
      };
    ints = {
      unsigned = mkOptionType {
        name = "unsignedInt";
        description = "unsigned integer, meaning >=0";
        check = x: isInt x && x >= 0;
      };
      between =
        lo: hi:
        mkOptionType {
          name = "intBetween";
          description = "integer between ${toString lo} and ${toString hi} (both inclusive)";
          check = x: isInt x && x >= lo && x <= hi;
        };
    };
    # As nixpkgs: the base type with an extra check ANDed in; the caller
    # may override `description` with `//`.
    addCheck = t: extra: t // { check = x: t.check x && extra x; };
  };
in
{
  inherit types mkOptionType;

  mkOption = attrs: attrs // { _type = "option"; };

  mkEnableOption = name: {
    _type = "option";
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };

  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };

  mkDefault = content: {
    _type = "override";
    priority = 1000;
    inherit content;
  };

  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };

  # nixpkgs: "${lib.getBin x}/bin/${x.meta.mainProgram}" (with a warning
  # when mainProgram is missing; the double insists on it).
  getExe = p: "${p}/bin/${p.meta.mainProgram}";

  isOption = x: isAttrs x && (x._type or null) == "option";

  # nixpkgs returns modules; the double returns markers that
  # eval-module.nix applies to the settings the way nixpkgs would: a renamed
  # option's value moves to its new name (with a warning), a removed one
  # fails with the instructions.
  mkRenamedOptionModule = from: to: {
    _type = "double-renamed";
    inherit from to;
  };
  mkRemovedOptionModule = path: instructions: {
    _type = "double-removed";
    inherit path instructions;
  };
}
