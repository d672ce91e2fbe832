# nixos-modules/zeta-creds-restore.nix evaluated against the lib test
# double (lib-double.nix, through eval-module.nix): the option set and its
# documentation, the defaults, that the module hands the right values to
# unit.nix (the user's declared home, the package's binary), that its
# assertions fire, and that the original system's option names still work.
# The settings that must *fail to evaluate* (type errors) are in run.sh,
# which checks their error text.
#
#   nix-instantiate --eval --strict --json tests/nix/module-cases.nix
#   => { "count": N, "failures": [ … ] }
let
  inherit (builtins)
    attrNames
    concatLists
    elem
    filter
    isAttrs
    isString
    length
    map
    toJSON
    ;
  u = import ../../nixos-modules/unit.nix;
  lib = import ./lib-double.nix;
  evalModule = import ./eval-module.nix;

  stubPackage = {
    type = "derivation";
    name = "zeta-creds-0.1.0";
    outPath = "/nix/store/11111111111111111111111111111111-zeta-creds-0.1.0";
    meta.mainProgram = "zeta-creds";
  };
  stubBin = "/nix/store/11111111111111111111111111111111-zeta-creds-0.1.0/bin/zeta-creds";
  pkgs = {
    zeta-creds = stubPackage;
  };
  ev =
    settings: users:
    evalModule {
      inherit settings users pkgs;
    };

  eq =
    what: got: want:
    if got == want then null else "${what}: expected ${toJSON want}, got ${toJSON got}";
  holds = what: ok: if ok then null else what;

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
  declared = flatten "" (ev { } { }).options.zeta.credsRestore;

  documented =
    d:
    let
      o = d.decl;
    in
    [
      (holds "${d.name}: has a type with a description" (
        isAttrs (o.type or null) && isString (o.type.description or null)
      ))
      (holds "${d.name}: has a description of a sentence or more" (
        isString (o.description or null) && builtins.stringLength o.description > 20
      ))
      (holds "${d.name}: has a default or a defaultText" (o ? default || o ? defaultText))
      (holds "${d.name}: has an example" (o ? example))
      (holds "${d.name}: its example passes its type" (
        !(o ? example) || (isAttrs o.example && (o.example._type or null) == "literalExpression") || o.type.check o.example
      ))
      (holds "${d.name}: its default passes its type" (
        !(o ? default) || o ? defaultText || o.type.check o.default
      ))
    ];

  cases = [
    {
      name = "the option set";
      checks = [
        (eq "option names" (map (d: d.name) declared) [
          "blob"
          "enable"
          "extraWritablePaths"
          "maxWorkFactor"
          "onConflict"
          "package"
          "passphrase.credential"
          "passphrase.credentialFallback"
          "passphrase.file"
          "passphrase.mode"
          "passphrase.timeout"
          "persona"
          "requireUsbPresent"
          "usbUuidFile"
          "usbWait"
          "user"
        ])
      ]
      ++ concatLists (map documented declared);
    }
    {
      name = "defaults";
      checks =
        let
          c = (ev { } { }).cfg;
        in
        [
          (eq "enable" c.enable false)
          (eq "blob" c.blob "/esp/zeta-creds.enc")
          (eq "usbUuidFile" c.usbUuidFile "/etc/zeta/usb-uuid")
          (eq "requireUsbPresent" c.requireUsbPresent false)
          (eq "usbWait" c.usbWait 10)
          (eq "user" c.user null)
          (eq "persona" c.persona null)
          (eq "passphrase" c.passphrase {
            mode = "interactive";
            file = null;
            credential = null;
            credentialFallback = "fail";
            timeout = 300;
          })
          (eq "onConflict" c.onConflict "keep-modified")
          (eq "maxWorkFactor" c.maxWorkFactor 20)
          (eq "extraWritablePaths" c.extraWritablePaths [ ])
          (eq "package (pkgs.zeta-creds)" c.package stubPackage)
        ];
    }
    {
      name = "disabled by default";
      checks = [ (eq "mkIf condition" (ev { } { }).enabled false) ];
    }
    {
      name = "enabled: the module's unit is unit.nix's";
      checks =
        let
          r = ev { enable = true; } { };
        in
        [
          (eq "mkIf condition" r.enabled true)
          (eq "config keys" r.configKeys [
            "assertions"
            "systemd"
          ])
          (eq "failed assertions" r.failedAssertions [ ])
          (eq "service" r.service
            (u.mkUnit {
              cfg = r.cfg;
              binary = stubBin;
            }).nixos
          )
          (eq "ExecStart's binary" (builtins.head (builtins.split " " r.service.serviceConfig.ExecStart)) stubBin)
        ];
    }
    {
      name = "the bare module with the package set explicitly";
      checks =
        let
          r = evalModule {
            settings = {
              enable = true;
              package = stubPackage // {
                outPath = "/nix/store/22222222222222222222222222222222-zeta-creds-custom";
              };
            };
            pkgs = { };
          };
        in
        [
          (eq "ExecStart's binary" (builtins.head (builtins.split " " r.service.serviceConfig.ExecStart))
            "/nix/store/22222222222222222222222222222222-zeta-creds-custom/bin/zeta-creds"
          )
        ];
    }
    {
      name = "every passphrase mode through the module";
      checks = concatLists (
        map (
          settings:
          let
            r = ev ({ enable = true; } // settings) { };
          in
          [
            (eq "failed assertions (${toJSON settings})" r.failedAssertions [ ])
            (eq "service (${toJSON settings})" r.service
              (u.mkUnit {
                cfg = r.cfg;
                binary = stubBin;
              }).nixos
            )
          ]
        ) [
          {
            passphrase = {
              mode = "file";
              file = "/run/zeta-creds/passphrase";
            };
          }
          {
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds.passphrase";
            };
            requireUsbPresent = true;
            usbWait = 20;
          }
          {
            persona = "ops";
            onConflict = "backup";
            maxWorkFactor = 18;
            blob = "/boot/zeta-creds.enc";
          }
        ]
      );
    }
    {
      name = "credential mode with the interactive fallback: both units, the runtime shell";
      checks =
        let
          bash = "/nix/store/33333333333333333333333333333333-bash-5.2/bin/bash";
          settings = {
            enable = true;
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
              credentialFallback = "interactive";
            };
          };
          r = evalModule {
            inherit settings;
            pkgs = pkgs // {
              runtimeShell = bash;
            };
          };
          want = u.mkUnit {
            cfg = r.cfg;
            binary = stubBin;
            shell = bash;
          };
        in
        [
          (eq "failed assertions" r.failedAssertions [ ])
          (eq "services" (attrNames r.services) [
            "zeta-creds-restore"
            "zeta-creds-restore-fallback"
          ])
          (eq "services are unit.nix's" r.services want.nixosServices)
          (eq "OnFailure" r.services.zeta-creds-restore.unitConfig.OnFailure [ "zeta-creds-restore-fallback.service" ])
          (holds "ExecStopPost runs pkgs.runtimeShell outside the sandbox" (
            builtins.substring 0 (builtins.stringLength bash + 4) r.service.serviceConfig.ExecStopPost == "+${bash} -c"
          ))
          (eq "the fallback is not wanted by any target (OnFailure= starts it)" r.services.zeta-creds-restore-fallback.wantedBy [ ])
          (eq "the fallback is not restarted by a switch" r.services.zeta-creds-restore-fallback.restartIfChanged false)
        ];
    }
    {
      name = "credential mode without the fallback: one unit";
      checks =
        let
          r = ev {
            enable = true;
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
            };
          } { };
        in
        [
          (eq "services" (attrNames r.services) [ "zeta-creds-restore" ])
          (eq "no OnFailure" (r.service.unitConfig ? OnFailure) false)
          (holds "ExecStopPost with /bin/sh when pkgs has no runtimeShell" (
            builtins.substring 0 12 r.service.serviceConfig.ExecStopPost == "+/bin/sh -c "
          ))
        ];
    }
    {
      name = "assertion: a bad credential fallback (past the type, as unit.nix sees it)";
      checks = [
        (holds "fires" (
          builtins.any (m: builtins.match ".*credentialFallback must be \"fail\".*" m != null) (
            u.failedAssertions {
              cfg.passphrase = {
                mode = "credential";
                credential = "/etc/credstore.encrypted/z";
                credentialFallback = "ask";
              };
            }
          )
        ))
      ];
    }
    {
      name = "the user's declared home reaches the unit";
      checks =
        let
          r = ev {
            enable = true;
            user = "ops";
          } { ops.home = "/srv/ops"; };
        in
        [
          (eq "failed assertions" r.failedAssertions [ ])
          (holds "ReadWritePaths has /srv/ops" (elem "/srv/ops" r.service.serviceConfig.ReadWritePaths))
          (eq "argv --user" (builtins.match ".* --user ops .*" r.service.serviceConfig.ExecStart) [ ])
        ];
    }
    {
      name = "a user that is not declared is looked up at boot";
      checks = [
        (eq "failed assertions"
          (ev {
            enable = true;
            user = "zeta";
          } { }).failedAssertions
          [ ]
        )
      ];
    }
    {
      name = "assertion: a user whose home is /";
      checks =
        let
          r = ev {
            enable = true;
            user = "admin";
          } { admin.home = "/"; };
        in
        [
          (holds "fires with its message (got ${toJSON r.failedAssertions})" (
            length r.failedAssertions == 1
            && builtins.match ".*users.users.admin.home = \"/\": zeta-creds refuses to restore into a home of /.*" (
              builtins.head r.failedAssertions
            ) != null
          ))
        ];
    }
    {
      name = "assertion: file mode without a file";
      checks =
        let
          r = ev {
            enable = true;
            passphrase.mode = "file";
          } { };
        in
        [
          (holds "fires with its message (got ${toJSON r.failedAssertions})" (
            length r.failedAssertions == 1
            && builtins.match ".*passphrase.mode = \"file\" needs zeta.credsRestore.passphrase.file.*" (
              builtins.head r.failedAssertions
            ) != null
          ))
        ];
    }
    {
      name = "assertion: credential mode without a credential";
      checks =
        let
          r = ev {
            enable = true;
            passphrase.mode = "credential";
          } { };
        in
        [
          (holds "fires with its message (got ${toJSON r.failedAssertions})" (
            length r.failedAssertions == 1
            && builtins.match ".*passphrase.mode = \"credential\" needs zeta.credsRestore.passphrase.credential.*systemd-creds encrypt.*" (
              builtins.head r.failedAssertions
            ) != null
          ))
        ];
    }
    {
      name = "the original system's option names";
      checks =
        let
          r = ev {
            enable = true;
            passphraseMode = "credential";
            usbUuidPath = "/etc/zeta/stick";
            passphrase.credential = "/etc/credstore.encrypted/z";
          } { };
        in
        [
          (eq "passphrase.mode" r.cfg.passphrase.mode "credential")
          (eq "usbUuidFile" r.cfg.usbUuidFile "/etc/zeta/stick")
          (eq "warnings" r.warnings [
            "The option `zeta.credsRestore.passphraseMode' has been renamed to `zeta.credsRestore.passphrase.mode'."
            "The option `zeta.credsRestore.usbUuidPath' has been renamed to `zeta.credsRestore.usbUuidFile'."
          ])
          (eq "failed assertions" r.failedAssertions [ ])
        ];
    }
  ];

  results = concatLists (map (c: map (r: if r == null then null else "${c.name}: ${r}") c.checks) cases);
in
{
  count = length results;
  failures = filter isString results;
  cases = map (c: c.name) cases;
  options = map (d: d.name) declared;
}
