# A TEST DOUBLE of the few nixpkgs `lib` functions that
# nixos-modules/zeta-creds-restore.nix (and default.nix's module wrapper)
# use. nixpkgs cannot be fetched on our build machines, so tests/nix/run.sh
# evaluates the module against this instead.
#
# It is a double, not a substitute: it mimics the *shape* of what nixpkgs
# returns (option declarations as attribute sets tagged `_type = "option"`,
# `mkIf` as `{ _type = "if"; condition; content; }`, types with `name`,
# `description`, `check` and `merge`), and a small module system
# (`evalModules`, in modules-double.nix) that merges definitions the way
# nixpkgs' lib/modules.nix does in the cases our module meets: mkIf and
# mkMerge pushed down to each option, priorities (mkOverride, mkDefault,
# mkForce, an option's default at 1500) with only the highest kept, lists
# concatenated, attribute sets merged key by key, submodules evaluated as
# modules of their own, and a scalar defined twice with different values
# refused with nixpkgs' "has conflicting definition values". What it still
# does not do is listed in tests/nix/README.md. The real module system
# runs in the flake's `checks.module-eval` (tests/nix/nixpkgs-eval.nix) on
# machines that have nixpkgs, and tests/nix/real-lib.nix runs the same
# override cases under a checkout of nixpkgs' lib/.
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

  showLoc = builtins.concatStringsSep ".";
  showVal = v: if builtins.isFunction v then "<function>" else builtins.toJSON v;

  # nixpkgs' mergeEqualOption: every definition must have the same value.
  mergeEqualOption =
    loc: defs:
    let
      first = builtins.head defs;
    in
    if all (d: d.value == first.value) defs then
      first.value
    else
      throw (
        "The option `${showLoc loc}' has conflicting definition values:\n"
        + concatStringsSep "\n" (map (d: "- In `${d.file}': ${showVal d.value}") defs)
        + "\nUse `lib.mkForce value` or `lib.mkDefault value` to change the priority on any of these definitions."
      );

  mkOptionType =
    {
      name,
      description,
      check,
      descriptionClass ? "noun",
      # loc: [ { file; value; } ] -> value; the definitions are already
      # filtered to the highest priority and checked against `check`.
      merge ? mergeEqualOption,
      # For attrsOf and submodule: the value is merged key by key, and
      # the keys' own mkIf/mkOverride are resolved below.
      nested ? false,
    }:
    {
      _type = "option-type";
      inherit
        name
        description
        check
        descriptionClass
        merge
        nested
        ;
    };

  types = {
    str = mkOptionType {
      name = "str";
      description = "string";
      check = isString;
    };
    # nixpkgs' types.lines: definitions joined with newlines.
    lines = mkOptionType {
      name = "lines";
      description = "strings concatenated with \"\\n\"";
      check = isString;
      merge = _loc: defs: concatStringsSep "\n" (map (d: d.value) defs);
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
        merge =
          loc: defs:
          if all (d: d.value == null) defs then
            null
          else if all (d: d.value != null) defs then
            t.merge loc defs
          else
            throw "The option `${showLoc loc}' is defined both null and not null, in ${concatStringsSep " and " (map (d: "`${d.file}'") defs)}.";
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
        merge = _loc: defs: builtins.concatLists (map (d: d.value) defs);
      };
    int = mkOptionType {
      name = "int";
      description = "signed integer";
      check = isInt;
    };
    path = mkOptionType {
      name = "path";
      description = "path";
      check = x: builtins.isPath x || (isString x && builtins.substring 0 1 x == "/");
    };
    # Anything, one value (nixpkgs' types.raw).
    raw = mkOptionType {
      name = "raw";
      description = "raw value";
      check = _: true;
    };
    either =
      a: b:
      mkOptionType {
        name = "either";
        description = "${a.description} or ${b.description}";
        check = x: a.check x || b.check x;
        merge =
          loc: defs:
          if all (d: a.check d.value) defs then
            a.merge loc defs
          else if all (d: b.check d.value) defs then
            b.merge loc defs
          else
            mergeEqualOption loc defs;
      };
    attrsOf =
      t:
      mkOptionType {
        name = "attrsOf";
        description = "attribute set of ${t.description}";
        check = isAttrs;
        nested = true;
        merge = loc: defs: (import ./modules-double.nix { lib = double; }).mergeAttrsOf t loc defs;
      };
    submodule =
      modules:
      mkOptionType {
        name = "submodule";
        description = "submodule";
        check = isAttrs;
        nested = true;
        merge =
          loc: defs:
          (import ./modules-double.nix { lib = double; }).mergeSubmodule (
            if isList modules then modules else [ modules ]
          ) loc defs;
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

  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };

  double = {
    inherit
      types
      mkOptionType
      mergeEqualOption
      showLoc
      showVal
      ;

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

  inherit mkOverride;
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;
  mkOptionDefault = mkOverride 1500;

  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };

  evalModules = args: (import ./modules-double.nix { lib = double; }).evalModules args;

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
  ;
in
double
