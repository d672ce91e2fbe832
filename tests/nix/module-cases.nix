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
          "integrations.agenix.enable"
          "integrations.agenix.services"
          "integrations.sops.enable"
          "integrations.sops.services"
          "manifest"
          "maxWorkFactor"
          "onConflict"
          "package"
          "passphrase.credential"
          "passphrase.credentialFallback"
          "passphrase.file"
          "passphrase.mode"
          "passphrase.timeout"
          "persona"
          "rebundle.enable"
          "rebundle.report"
          "requireUsbPresent"
          "restoreOn"
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
          (eq "blob (boot.loader.efi.efiSysMountPoint's default, /boot)" c.blob "/boot/zeta-creds.enc")
          (eq "manifest" c.manifest null)
          (eq "integrations (neither sops-nix nor agenix imported)" c.integrations {
            sops = {
              enable = false;
              services = [ ];
            };
            agenix = {
              enable = false;
              services = [ ];
            };
          })
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
            "environment"
            "systemd"
          ])
          (eq "zeta-creds on PATH" r.config.environment.systemPackages [ stubPackage ])
          (eq "no manifest in /etc by default" r.config.environment.etc { })
          (eq "services" (attrNames r.merged) [
            "zeta-creds-rebundle"
            "zeta-creds-restore"
            "zeta-creds-restore-check"
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
            "zeta-creds-rebundle"
            "zeta-creds-rebundle-shutdown"
            "zeta-creds-restore"
            "zeta-creds-restore-check"
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
          (eq "services" (attrNames r.services) [
            "zeta-creds-rebundle"
            "zeta-creds-rebundle-shutdown"
            "zeta-creds-restore"
            "zeta-creds-restore-check"
          ])
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

  # A second module over the enabled one: the merged service.
  over =
    extra:
    (evalModule {
      settings.enable = true;
      inherit pkgs;
      modules = [ extra ];
    }).merged.zeta-creds-restore;
  fails = x: !(builtins.tryEval (builtins.deepSeq x true)).success;

  # Stand-ins for sops-nix's and agenix's modules (standins.nix).
  standins = import ./standins.nix;
  sopsModule = standins.sops;
  agenixModule = standins.agenix;
  withSops =
    settings: sopsCfg:
    evalModule {
      settings = {
        enable = true;
      }
      // settings;
      inherit pkgs;
      modules = [
        sopsModule
        { sops = sopsCfg; }
      ];
    };
  withAgenix =
    settings: extra:
    evalModule {
      settings = {
        enable = true;
      }
      // settings;
      inherit pkgs;
      modules = [
        agenixModule
        {
          age.secrets.wg.path = "/run/agenix/wg";
          age.secrets.token.path = "/run/agenix/token";
        }
        extra
      ];
    };

  overrideCases = [
    {
      name = "the blob follows boot.loader.efi.efiSysMountPoint";
      checks = [
        (eq "blob"
          (evalModule {
            inherit pkgs;
            modules = [ { boot.loader.efi.efiSysMountPoint = "/efi"; } ];
          }).cfg.blob
          "/efi/zeta-creds.enc"
        )
        (eq "ConditionPathExists"
          (over { boot.loader.efi.efiSysMountPoint = "/efi"; }).unitConfig.ConditionPathExists
          [
            "/efi/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
            "!/run/zeta-creds-already-restored"
          ]
        )
      ];
    }
    {
      name = "the manifest in /etc, checked at build time";
      checks =
        let
          m =
            v:
            (evalModule {
              settings = {
                enable = true;
                manifest = v;
              };
              inherit pkgs;
            }).config.environment.etc;
        in
        [
          (eq "attrs" (m {
            version = 1;
            user = "zeta";
            entry = [ ];
          }) { "zeta/creds-manifest.toml".source = "/nix/store/44444444444444444444444444444444-zeta-creds-manifest.toml"; })
          (eq "a path" (m ./golden) {
            "zeta/creds-manifest.toml".source = "/nix/store/44444444444444444444444444444444-zeta-creds-manifest.toml";
          })
          (holds "a number is refused" (fails (m 3)))
        ];
    }
    {
      name = "NixOS's start limits: our values, overridable";
      checks = [
        (eq "unitConfig from startLimitBurst/startLimitIntervalSec" {
          inherit ((over { }).unitConfig) StartLimitBurst StartLimitIntervalSec;
        } {
          StartLimitBurst = "3";
          StartLimitIntervalSec = "600";
        })
        (holds "plain startLimitBurst = 5 conflicts with ours (use mkForce)" (
          fails (over { systemd.services.zeta-creds-restore.startLimitBurst = 5; }).unitConfig
        ))
        (eq "mkDefault: ours wins" (over { systemd.services.zeta-creds-restore.startLimitBurst = lib.mkDefault 5; }).unitConfig.StartLimitBurst "3")
        (eq "mkForce startLimitBurst" (over { systemd.services.zeta-creds-restore.startLimitBurst = lib.mkForce 5; }).unitConfig.StartLimitBurst "5")
        (eq "mkForce startLimitIntervalSec" (over {
          systemd.services.zeta-creds-restore.startLimitIntervalSec = lib.mkForce 60;
        }).unitConfig.StartLimitIntervalSec "60")
        # Issue 17's bug, as the module had it: unitConfig.StartLimitBurst
        # written directly conflicts with NixOS's own definition from
        # startLimitBurst, even under mkForce. The double must see it.
        (holds "the old way (unitConfig.StartLimitBurst beside startLimitBurst = mkForce) conflicts" (
          fails
            (evalModule {
              inherit pkgs;
              modules = [
                {
                  systemd.services.old.unitConfig.StartLimitBurst = 3;
                  systemd.services.old.startLimitBurst = lib.mkForce 5;
                }
              ];
            }).merged.old.unitConfig
        ))
      ];
    }
    {
      name = "a second module over the ordering";
      checks = [
        (eq "plain: added to ours" (over { systemd.services.zeta-creds-restore.after = [ "network.target" ]; }).after [
          "local-fs.target"
          "systemd-sysusers.service"
          "userborn.service"
          "zeta-creds-restore-check.service"
          "network.target"
        ])
        (eq "mkDefault: ours only" (over {
          systemd.services.zeta-creds-restore.before = lib.mkDefault [ "x.service" ];
        }).before (u.mkUnit { cfg = { }; binary = stubBin; }).unit.Before)
        (eq "mkForce: theirs only" (over {
          systemd.services.zeta-creds-restore.before = lib.mkForce [ "sshd.service" ];
        }).unitConfig.Before "sshd.service")
      ];
    }
    {
      name = "a second module over the environment";
      checks = [
        (eq "plain" (over { systemd.services.zeta-creds-restore.environment.RUST_LOG = "debug"; }).environment {
          RUST_LOG = "debug";
        })
        (holds "two values for one variable conflict" (
          fails
            (over {
              imports = [ { systemd.services.zeta-creds-restore.environment.A = "1"; } ];
              systemd.services.zeta-creds-restore.environment.A = "2";
            }).environment
        ))
        (eq "mkForce over another" (over {
          imports = [ { systemd.services.zeta-creds-restore.environment.A = "1"; } ];
          systemd.services.zeta-creds-restore.environment.A = lib.mkForce "2";
        }).environment { A = "2"; })
      ];
    }
    {
      name = "a second module over the restart policy";
      checks = [
        (holds "plain Restart = always conflicts with ours (use mkForce)" (
          fails (over { systemd.services.zeta-creds-restore.serviceConfig.Restart = "always"; }).serviceConfig.Restart
        ))
        (eq "mkDefault: ours" (over {
          systemd.services.zeta-creds-restore.serviceConfig.Restart = lib.mkDefault "always";
        }).serviceConfig.Restart "on-failure")
        (eq "mkForce: theirs" (over {
          systemd.services.zeta-creds-restore.serviceConfig.Restart = lib.mkForce "no";
        }).serviceConfig.Restart "no")
        (eq "RestartPreventExitStatus kept" (over {
          systemd.services.zeta-creds-restore.serviceConfig.Restart = lib.mkForce "no";
        }).serviceConfig.RestartPreventExitStatus "2 3 4 5 6 7 8 243")
      ];
    }
    {
      name = "sops-nix in activation mode: the follow-up unit";
      checks =
        let
          r = withSops { integrations.sops.services = [ "nginx" ]; } {
            secrets.db = { };
            age.keyFile = "/var/lib/sops-nix/key.txt";
            environment.SOPS_GPG_EXEC = "/bin/gpg";
          };
          f = r.merged.zeta-creds-sops-nix;
        in
        [
          (eq "enabled by default when sops-nix has secrets" r.cfg.integrations.sops.enable true)
          (eq "failed assertions" r.failedAssertions [ ])
          (eq "ExecStart" f.serviceConfig.ExecStart "/nix/store/55555555555555555555555555555555-sops-install-secrets/bin/sops-install-secrets /nix/store/66666666666666666666666666666666-manifest.json")
          (eq "only when activation published nothing and the key is there" f.unitConfig.ConditionPathExists [
            "!/run/secrets"
            "|/var/lib/sops-nix/key.txt"
          ])
          (eq "after both restore units" f.after [
            "zeta-creds-restore.service"
            "zeta-creds-restore-fallback.service"
          ])
          (eq "before the consumers" f.before [ "nginx.service" ])
          (eq "wanted by multi-user.target" f.wantedBy [ "multi-user.target" ])
          (eq "sops-nix's environment, and restarts through systemctl (a unit, not activation)" f.environment {
            SOPS_GPG_EXEC = "/bin/gpg";
            SOPS_RESTART_UNITS_VIA_SYSTEMCTL = "1";
          })
          (eq "oneshot, once" {
            inherit (f.serviceConfig) Type RemainAfterExit;
          } {
            Type = "oneshot";
            RemainAfterExit = true;
          })
          (eq "the consumer is after the restore and the follow-up" r.merged.nginx.after [
            "zeta-creds-restore.service"
            "zeta-creds-sops-nix.service"
          ])
          (eq "the restore is before sops-install-secrets.service"
            (builtins.elem "sops-install-secrets.service" r.merged.zeta-creds-restore.before)
            true
          )
        ];
    }
    {
      name = "sops-nix in systemd mode: ordering only";
      checks =
        let
          r = withSops { integrations.sops.services = [ "nginx" ]; } {
            secrets.db = { };
            useSystemdActivation = true;
            age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
          };
        in
        [
          (eq "no follow-up" (attrNames r.merged) [
            "nginx"
            "zeta-creds-rebundle"
            "zeta-creds-restore"
            "zeta-creds-restore-check"
          ])
          (eq "the consumer is after sops-install-secrets.service" r.merged.nginx.after [
            "zeta-creds-restore.service"
            "sops-install-secrets.service"
          ])
        ];
    }
    {
      name = "sops-nix imported without secrets, or switched off";
      checks = [
        (eq "off without secrets" (withSops { } { }).cfg.integrations.sops.enable false)
        (eq "switched off: no follow-up" (attrNames
          (withSops { integrations.sops.enable = false; } {
            secrets.db = { };
          }).merged
        ) [
          "zeta-creds-rebundle"
          "zeta-creds-restore"
          "zeta-creds-restore-check"
        ])
      ];
    }
    {
      name = "rebundle (issue 18): on in credential mode, reporting otherwise, the login line";
      checks =
        let
          cred = ev {
            enable = true;
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
            };
          } { };
          inter = ev { enable = true; } { };
          off = ev {
            enable = true;
            rebundle.report = false;
          } { };
          forced = ev {
            enable = true;
            rebundle.enable = true;
          } { };
          login = "if [ -r /run/zeta-creds-notice/stale ]; then cat /run/zeta-creds-notice/stale; fi\n";
        in
        [
          (eq "credential mode: enable defaults to true" cred.cfg.rebundle.enable true)
          (eq "interactive: enable defaults to false" inter.cfg.rebundle.enable false)
          (eq "report defaults to true" inter.cfg.rebundle.report true)
          (eq "credential mode: the timer" (attrNames cred.config.systemd.timers) [ "zeta-creds-rebundle" ])
          (eq "credential mode: timers are unit.nix's" cred.config.systemd.timers
            (u.mkUnit {
              cfg = cred.cfg;
              binary = stubBin;
            }).nixosTimers
          )
          (holds "credential mode: the re-bundle loads the restore's credential" (
            cred.merged.zeta-creds-rebundle.serviceConfig.LoadCredentialEncrypted
            == cred.merged.zeta-creds-restore.serviceConfig.LoadCredentialEncrypted
          ))
          (holds "interactive: the timer only reports" (
            builtins.match ".* --report-only" inter.merged.zeta-creds-rebundle.serviceConfig.ExecStart != null
          ))
          (eq "the login line" inter.config.environment.loginShellInit login)
          (eq "switched off: no timer" off.config.systemd.timers { })
          (eq "switched off: no re-bundle unit" (attrNames off.merged) [
            "zeta-creds-restore"
            "zeta-creds-restore-check"
          ])
          (eq "switched off: no login line" off.config.environment.loginShellInit "")
          (holds "enable without a sealed passphrase is refused" (
            builtins.any (m: builtins.match ".*rebundle.enable needs passphrase.mode.*" m != null) forced.failedAssertions
          ))
        ];
    }
    {
      name = "restoreOn: the check unit with new-blob, none with every-boot";
      checks =
        let
          nb = ev { enable = true; } { };
          eb = ev {
            enable = true;
            restoreOn = "every-boot";
          } { };
          cred = ev {
            enable = true;
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
            };
          } { };
          check = nb.merged.zeta-creds-restore-check;
        in
        [
          (eq "default" nb.cfg.restoreOn "new-blob")
          (eq "new-blob: the restore wants the check" nb.service.wants [ "zeta-creds-restore-check.service" ])
          (eq "new-blob: the check is before the restore" check.before [ "zeta-creds-restore.service" ])
          (eq "new-blob: the check is wanted by nothing else" check.wantedBy [ ])
          (eq "new-blob: the check is not restarted by a switch" check.restartIfChanged false)
          (eq "new-blob: the check's ExecStart" check.serviceConfig.ExecStart
            "${stubBin} restore --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --if-new --check")
          (holds "credential mode: the check loads no credential" (
            !(cred.merged.zeta-creds-restore-check.serviceConfig ? LoadCredentialEncrypted)
          ))
          (holds "credential mode: the restore does" (
            cred.merged.zeta-creds-restore.serviceConfig ? LoadCredentialEncrypted
          ))
          (eq "every-boot: no check" (attrNames eb.merged) [
            "zeta-creds-rebundle"
            "zeta-creds-restore"
          ])
          (eq "every-boot: wants nothing" eb.service.wants [ ])
          (eq "every-boot: no marker condition" eb.service.unitConfig.ConditionPathExists [
            "/boot/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
          ])
        ];
    }
    {
      name = "assertion: the sops-nix integration without sops-nix";
      checks =
        let
          r = ev {
            enable = true;
            integrations.sops.enable = true;
          } { };
        in
        [
          (holds "fires (got ${toJSON r.failedAssertions})" (
            builtins.any (m: builtins.match ".*sops-nix is not imported.*" m != null) r.failedAssertions
          ))
        ];
    }
    {
      name = "agenix in activation mode: the follow-up unit";
      checks =
        let
          r = withAgenix { integrations.agenix.services = [ "wireguard-wg0" ]; } { };
          f = r.merged.zeta-creds-agenix;
        in
        [
          (eq "enabled by default when agenix has secrets" r.cfg.integrations.agenix.enable true)
          (eq "failed assertions" r.failedAssertions [ ])
          (eq "ExecStart: agenix's own steps in a script" f.serviceConfig.ExecStart "/nix/store/44444444444444444444444444444444-zeta-creds-agenix")
          (eq "only when a secret is missing" f.unitConfig.ConditionPathExists [
            "|!/run/agenix/token"
            "|!/run/agenix/wg"
          ])
          (eq "mount on its path" f.path [ "/nix/store/44444444444444444444444444444444-util-linux" ])
          (eq "the consumer" r.merged.wireguard-wg0.after [
            "zeta-creds-restore.service"
            "zeta-creds-agenix.service"
          ])
        ];
    }
    {
      name = "agenix under systemd-sysusers: ordering only";
      checks =
        let
          r = withAgenix { integrations.agenix.services = [ "wireguard-wg0" ]; } {
            options.systemd.sysusers.enable = lib.mkOption {
              type = lib.types.bool;
              default = false;
              description = "(stand-in)";
            };
            config.systemd.sysusers.enable = true;
          };
        in
        [
          (eq "no follow-up" (r.merged ? zeta-creds-agenix) false)
          (eq "the consumer is after agenix-install-secrets.service" r.merged.wireguard-wg0.after [
            "zeta-creds-restore.service"
            "agenix-install-secrets.service"
          ])
          (holds "the restore is before agenix-install-secrets.service" (
            builtins.elem "agenix-install-secrets.service" r.merged.zeta-creds-restore.before
          ))
        ];
    }
  ];

  allCases = cases ++ overrideCases;
  results = concatLists (map (c: map (r: if r == null then null else "${c.name}: ${r}") c.checks) allCases);
in
{
  count = length results;
  failures = filter isString results;
  cases = map (c: c.name) allCases;
  options = map (d: d.name) declared;
}
