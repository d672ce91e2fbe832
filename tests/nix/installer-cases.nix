# nixos-modules/installer.nix (the flake's nixosModules.installer, for a
# custom installer ISO) evaluated against the lib test double
# (lib-double.nix, modules-double.nix, nixos-double.nix): what it puts on
# the live system with and without a manifest of its own, that the
# manifest is checked by the binary before it is used, that the step's
# wrapper points it at that manifest, that every option is typed and
# documented, and the flake's wrapper (the package with mkDefault, which a
# host's own setting overrides). Nothing is built: the builders are stubs
# that return what they were given.
#
#   nix-instantiate --eval --strict --json tests/nix/installer-cases.nix \
#     --arg lib 'import ./tests/nix/lib-double.nix'
#   => { "count": N, "failures": [ … ], "cases": [ … ] }
#
# The same cases run under nixpkgs' real lib.evalModules (by hand, as
# real-lib.nix: CI has no nixpkgs):
#
#   nix-instantiate --eval --strict --json tests/nix/installer-cases.nix \
#     --arg lib 'import /path/to/nixpkgs.lib/lib'
{ lib }:
let
  inherit (builtins)
    attrNames
    concatLists
    filter
    isAttrs
    isString
    length
    map
    match
    toJSON
    tryEval
    ;

  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/11111111111111111111111111111111-${name}";
    meta.mainProgram = "zeta-creds";
  };
  # A builder stub: a derivation-like set that keeps its arguments.
  built = kind: name: args: {
    type = "derivation";
    inherit kind name args;
    outPath = "/nix/store/44444444444444444444444444444444-${name}";
  };
  pkgs = {
    zeta-creds = stubPackage "zeta-creds-0.1.0";
    makeWrapper = stubPackage "make-wrapper-hook";
    formats.toml = _: {
      type = lib.mkOptionType {
        name = "tomlValue";
        description = "TOML value";
        check = isAttrs;
      };
      generate = name: value: built "toml" name value;
    };
    runCommand =
      name: env: script:
      built "runCommand" name { inherit env script; };
    symlinkJoin = args: built "symlinkJoin" args.name args;
  };

  eval =
    {
      settings ? { },
      modules ? [ ],
      pkgs' ? pkgs,
    }:
    let
      ev = lib.evalModules {
        modules = [
          ./nixos-double.nix
          ../../nixos-modules/installer.nix
          { zeta.installer = settings; }
        ]
        ++ modules;
        specialArgs.pkgs = pkgs';
      };
    in
    # `checked`: the double's unknown-option check (the real lib checks
    # when config is read).
    builtins.seq (ev.checked or true) {
      inherit (ev) config options;
    };

  plain = eval { };
  # A manifest already in the store (a path literal would be copied there,
  # which evaluation against the dummy store cannot do).
  manifestFile = "/nix/store/77777777777777777777777777777777-creds-manifest.toml";
  withFile = eval { settings.manifest = manifestFile; };
  withAttrs = eval {
    settings.manifest = {
      version = 1;
      user = "nixos";
      entry = [ { path = "~/.config/gh/hosts.yml"; } ];
    };
  };
  theOne =
    what: xs:
    if length xs == 1 then
      builtins.head xs
    else
      throw "${what}: expected one, got ${toString (length xs)}";
  joined = theOne "systemPackages with a manifest" withFile.config.environment.systemPackages;
  manifestDir = withFile.config.environment.etc."zeta/creds-manifest.toml".source;
  joinedAttrs = theOne "systemPackages with attrs" withAttrs.config.environment.systemPackages;

  # The flake's nixosModules.installer, with a stub nixpkgs.
  flake = (import ../../flake.nix).outputs {
    self = { };
    nixpkgs = {
      lib.genAttrs =
        names: f:
        builtins.listToAttrs (
          map (n: {
            name = n;
            value = f n;
          }) names
        );
      legacyPackages = {
        x86_64-linux = stubPkgsForFlake;
        aarch64-linux = stubPkgsForFlake;
      };
    };
  };
  stubPkgsForFlake = pkgs // {
    callPackage = _f: _args: stubPackage "zeta-creds-from-the-iso-nixpkgs";
    nixfmt-rfc-style = stubPackage "nixfmt";
  };
  viaFlake =
    modules:
    let
      ev = lib.evalModules {
        modules = [
          ./nixos-double.nix
          flake.nixosModules.installer
        ]
        ++ modules;
        specialArgs.pkgs = removeAttrs stubPkgsForFlake [ "zeta-creds" ];
      };
    in
    builtins.seq (ev.checked or true) ev.config;

  # Every option, as "a.b" names with its declaration.
  flatten =
    prefix: opts:
    concatLists (
      map (
        n:
        let
          o = opts.${n};
          name = if prefix == "" then n else "${prefix}.${n}";
        in
        if lib.isOption o then
          [
            {
              inherit name;
              decl = o;
            }
          ]
        else
          flatten name o
      ) (attrNames opts)
    );
  declared = flatten "zeta.installer" plain.options.zeta.installer;

  eq =
    what: got: want:
    if got == want then null else "${what}: expected ${toJSON want}, got ${toJSON got}";
  holds = what: ok: if ok then null else what;
  has = what: re: s: holds "${what} (${re})" (isString s && match re s != null);

  cases = [
    {
      name = "options";
      checks =
        [
          (eq "declared" (map (d: d.name) declared) [
            "zeta.installer.manifest"
            "zeta.installer.package"
          ])
        ]
        ++ concatLists (
          map (d: [
            (holds "${d.name}: has a type with a description" (isString (d.decl.type.description or null)))
            (holds "${d.name}: has a description of a sentence or more" (
              isString (d.decl.description or null) && match "[A-Z`].*[.]\n?" d.decl.description != null
            ))
            (holds "${d.name}: has an example" (d.decl ? example))
          ]) declared
        );
    }
    {
      name = "no manifest: the package as it is";
      checks = [
        (eq "systemPackages" (map (p: p.name) plain.config.environment.systemPackages) [ "zeta-creds-0.1.0" ])
        (eq "nothing in /etc" plain.config.environment.etc { })
      ];
    }
    {
      name = "a manifest file";
      checks = [
        (eq "one package, the package with its step wrapped" joined.kind "symlinkJoin")
        (eq "it holds the package" joined.args.paths [ pkgs.zeta-creds ])
        (eq "makeWrapper" joined.args.nativeBuildInputs [ pkgs.makeWrapper ])
        (has "the step is replaced by a wrapper of the package's step" ''.*rm "[$]out/bin/zeta-creds-step"
makeWrapper /nix/store/11111111111111111111111111111111-zeta-creds-0.1.0/bin/zeta-creds-step "[$]out/bin/zeta-creds-step".*'' joined.args.postBuild)
        (has "the step defaults to the ISO's manifest, the caller's variable still wins" ".*--set-default ZETA_CREDS_MANIFEST_DIR /nix/store/44444444444444444444444444444444-zeta-creds-installer-manifest\n.*" joined.args.postBuild)
        (eq "/etc/zeta/creds-manifest.toml" manifestDir "/nix/store/44444444444444444444444444444444-zeta-creds-installer-manifest/default.toml")
      ];
    }
    {
      name = "the manifest build";
      checks =
        let
          # The same stubs, but runCommand exposes the manifest directory's
          # derivation through the wrapper's postBuild context: evaluate it
          # again with a runCommand that returns its script as its path.
          scriptOf =
            settings:
            let
              ev = eval {
                inherit settings;
                pkgs' = pkgs // {
                  runCommand = _name: env: script: {
                    type = "derivation";
                    name = "manifest";
                    outPath = script;
                    inherit env;
                  };
                };
              };
            in
            ev.config.environment.etc."zeta/creds-manifest.toml".source;
          fromFile = scriptOf { manifest = manifestFile; };
          fromAttrs = scriptOf { manifest.version = 1; };
        in
        [
          (has "checked with --syntax-only, then installed as default.toml" "\nzeta-creds manifest check --syntax-only ${manifestFile}\ninstall -Dm644 ${manifestFile} \"[$]out/default.toml\"\n/default.toml" (
            "\n" + fromFile
          ))
          (has "attrs are written with pkgs.formats.toml, then checked" ".*--syntax-only /nix/store/44444444444444444444444444444444-creds-manifest.toml\n.*" fromAttrs)
        ];
    }
    {
      name = "a manifest as Nix attributes";
      checks = [
        (eq "one package, wrapped" joinedAttrs.kind "symlinkJoin")
        (holds "/etc/zeta/creds-manifest.toml" (withAttrs.config.environment.etc ? "zeta/creds-manifest.toml"))
      ];
    }
    {
      name = "the package option";
      checks = [
        (eq "no package and none in pkgs: evaluation fails" (tryEval
          (eval { pkgs' = removeAttrs pkgs [ "zeta-creds" ]; }).config.environment.systemPackages
        ).success false)
        (eq "a package of the host's" (map (p: p.name) (eval { settings.package = stubPackage "mine"; }).config.environment.systemPackages) [
          "mine"
        ])
      ];
    }
    {
      name = "flake.nix nixosModules.installer";
      checks = [
        (eq "the package from the ISO's nixpkgs, without pkgs.zeta-creds" (map (p: p.name) (viaFlake [ ]).environment.systemPackages) [
          "zeta-creds-from-the-iso-nixpkgs"
        ])
        (eq "a host's own package wins over the flake's mkDefault" (map (p: p.name) (viaFlake [
          { zeta.installer.package = stubPackage "mine"; }
        ]).environment.systemPackages) [ "mine" ])
      ];
    }
  ];

  results = concatLists (map (c: map (r: if r == null then null else "${c.name}: ${r}") c.checks) cases);
in
{
  count = length results;
  failures = filter isString results;
  cases = map (c: c.name) cases;
}
