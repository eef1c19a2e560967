// Command vcsim runs govmomi's vCenter simulator, prepared for the vSphere provider's tests.
//
// It is built from the Debian package golang-github-vmware-govmomi-dev (govmomi 0.24.2) without
// network access; tests/vcsim/__init__.py builds and starts it. On top of the stock VPX model
// (datacenter DC0, cluster DC0_C0, host DC0_H0, datastore LocalDS_0, networks "VM Network" and
// DC0_DVPG0) it:
//
//   - makes login strict: only the user and password given in VCSIM_USERNAME / VCSIM_PASSWORD are
//     accepted, on the SOAP API (/sdk) and on the REST API (/rest/com/vmware/cis/session);
//   - serves the REST tagging API (vapi) and the storage policy service (pbm, at /pbm and, like
//     vCenter, at /pbm/sdk with the session in the vcSessionCookie SOAP header);
//   - creates the folders, templates and tags of the configuration read from stdin;
//   - makes clones of those templates behave more like vCenter (DuplicateName, spec.config
//     hardware, spec.powerOn) and can make their first clones fail;
//   - stands in for VMware Tools and a DHCP server: powered-on VMs whose first NIC is on a network
//     with a DHCP range get a guest IP address and host name;
//   - answers null, as vCenter does, when a client fetches an unset property (pyVmomi's accessors,
//     e.g. vm.snapshot of a VM without snapshots): the simulator drops the connection.
//
// Configuration (JSON on stdin; unknown fields are refused):
//
//	{
//	  "tls": true,                          // serve https with a fresh self-signed certificate
//	  "folders": ["Templates", "a/b"],      // VM folders, created under DC0's vm folder
//	  "templates": [{
//	    "name": "ubuntu", "folder": "Templates",
//	    "snapshot": true,                   // a snapshot to clone from (linked clones)
//	    "diskGiB": 25,                      // capacity of the template's disk
//	    "guestId": "ubuntu64Guest",         // optional
//	    "network": "VM Network",            // network of the template's NIC (default "VM Network")
//	    "failClones": 2                     // the first 2 clones fail (NoDiskSpace)
//	  }],
//	  "tags": [{"category": "anywhere", "name": "workers"}],
//	  "dhcp": {"VM Network": {"first": "10.40.0.100", "last": "10.40.0.199"}},
//	  "ipDelayMs": 200                      // from power-on to the guest IP (default 200)
//	}
//
// Once ready it prints one line of JSON to stdout:
//
//	{"url": "https://127.0.0.1:PORT/sdk", "host": "127.0.0.1", "port": PORT,
//	 "thumbprint": "AB:CD:...", "datacenter": "DC0", "tags": {"anywhere/workers": "urn:vmomi:..."}}
//
// and serves until SIGTERM or SIGINT (or, with -exit-on-stdin-eof, until stdin is closed, so the
// simulator does not outlive the test process that started it). Logs go to stderr only.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	_ "github.com/vmware/govmomi/pbm/simulator" // serves the storage policy service (pbm)
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vapi/rest"
	_ "github.com/vmware/govmomi/vapi/simulator" // serves the REST API (tagging, content library)
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// sourceVM is the stock VPX model VM that templates are cloned from (it lives in cluster DC0_C0,
// so templates and their clones land on a cluster host).
const sourceVM = "DC0_C0_RP0_VM0"

type templateConfig struct {
	Name       string `json:"name"`
	Folder     string `json:"folder"`
	Snapshot   bool   `json:"snapshot"`
	DiskGiB    int64  `json:"diskGiB"`
	GuestID    string `json:"guestId"`
	Network    string `json:"network"`
	FailClones int    `json:"failClones"`
}

type tagConfig struct {
	Category string `json:"category"`
	Name     string `json:"name"`
}

type rangeConfig struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

type config struct {
	TLS       bool                   `json:"tls"`
	Folders   []string               `json:"folders"`
	Templates []templateConfig       `json:"templates"`
	Tags      []tagConfig            `json:"tags"`
	DHCP      map[string]rangeConfig `json:"dhcp"`
	IPDelayMs *int                   `json:"ipDelayMs"`
}

// ready is the line printed to stdout once the simulator serves.
type ready struct {
	URL        string            `json:"url"`
	Host       string            `json:"host"`
	Port       int               `json:"port"`
	Thumbprint string            `json:"thumbprint"`
	Datacenter string            `json:"datacenter"`
	Tags       map[string]string `json:"tags"`
}

func main() {
	log.SetOutput(os.Stderr)
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("vcsim: ")
	exitOnEOF := flag.Bool("exit-on-stdin-eof", false, "after the configuration, exit when stdin is closed")
	flag.Parse()

	cfg, err := readConfig(os.Stdin)
	if err != nil {
		log.Printf("config: %v", err)
		os.Exit(2)
	}
	user, pass := os.Getenv("VCSIM_USERNAME"), os.Getenv("VCSIM_PASSWORD")
	if user == "" || pass == "" {
		log.Print("VCSIM_USERNAME and VCSIM_PASSWORD must be set")
		os.Exit(2)
	}
	_ = os.Unsetenv("VCSIM_PASSWORD")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *exitOnEOF {
		ctx = exitOnStdinEOF(ctx)
	}
	if err := run(ctx, cfg, user, pass); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func readConfig(r io.Reader) (*config, error) {
	var cfg config
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for i := range cfg.Templates {
		t := &cfg.Templates[i]
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("templates[%d]: name is required", i)
		case names[t.Name]:
			return nil, fmt.Errorf("templates[%d]: duplicate name %q", i, t.Name)
		case t.DiskGiB < 0 || t.FailClones < 0:
			return nil, fmt.Errorf("templates[%d]: diskGiB and failClones must not be negative", i)
		}
		names[t.Name] = true
		if t.Network == "" {
			t.Network = "VM Network"
		}
	}
	for i, t := range cfg.Tags {
		if t.Category == "" || t.Name == "" {
			return nil, fmt.Errorf("tags[%d]: category and name are required", i)
		}
	}
	if cfg.IPDelayMs == nil {
		delay := 200
		cfg.IPDelayMs = &delay
	} else if *cfg.IPDelayMs < 0 {
		return nil, errors.New("ipDelayMs must not be negative")
	}
	return &cfg, nil
}

// exitOnStdinEOF returns a context cancelled when stdin reaches end of file (the parent is gone).
func exitOnStdinEOF(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		_, _ = io.Copy(ioutil.Discard, os.Stdin)
		log.Print("stdin closed")
		cancel()
	}()
	return ctx
}

func run(ctx context.Context, cfg *config, user, pass string) error {
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		return err
	}
	defer model.Remove() // the datastores' temporary directories

	mux := http.NewServeMux()
	model.Service.ServeMux = mux
	model.Service.RegisterEndpoints = true
	// With a user in Listen, SessionManager.Login accepts only these credentials (validLogin).
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(user, pass)}
	strictRESTLogin(mux, user, pass)
	pbmSDKPath(mux)
	if cfg.TLS {
		cert, err := selfSignedCertificate()
		if err != nil {
			return err
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	server := model.Service.NewServer()
	defer server.Close()
	// No request can have come yet: nobody knows the port.
	server.Config.Handler = nullForUnsetFetch(server.Config.Handler)

	// server.URL carries the credentials: the client logs in with them.
	client, err := govmomi.NewClient(ctx, server.URL, true)
	if err != nil {
		return fmt.Errorf("login to the simulator: %w", err)
	}
	inv, err := setUp(ctx, client.Client, cfg)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	tagIDs, err := createTags(ctx, client.Client, server.URL.User, cfg.Tags)
	if err != nil {
		return fmt.Errorf("tags: %w", err)
	}

	guests, err := newGuestSimulator(ctx, client.Client, cfg)
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		guests.run(ctx)
	}()

	u := *server.URL
	u.User = nil
	port := server.Listener.Addr().(*net.TCPAddr).Port
	line := ready{
		URL:        u.String(),
		Host:       u.Hostname(),
		Port:       port,
		Datacenter: inv.datacenter,
		Tags:       tagIDs,
	}
	if cfg.TLS {
		line.Thumbprint = thumbprint(server.Certificate())
	}
	out, err := json.Marshal(line)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(os.Stdout, "%s\n", out); err != nil {
		return err
	}
	log.Printf("serving %s", u.String())

	<-ctx.Done()
	<-done
	log.Print("stopping")
	return nil
}

// strictRESTLogin makes REST session creation check the credentials: vapi/simulator 0.24.2
// accepts any non-empty user and password (handler.hasAuthorization ignores Service.Listen.User).
// The more specific pattern wins over vapi's "/rest/" in http.ServeMux.
func strictRESTLogin(mux *http.ServeMux, user, pass string) {
	var (
		once sync.Once
		vapi http.Handler
	)
	mux.HandleFunc(rest.Path+"/com/vmware/cis/session", func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			vapi, _ = mux.Handler(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: rest.Path + "/"}})
		})
		if r.Method == http.MethodPost && r.URL.Query().Get("~action") == "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		vapi.ServeHTTP(w, r)
	})
}

var (
	fetchRequest = regexp.MustCompile(`<(?:\w+:)?Fetch[\s>]`)
	fetchProp    = regexp.MustCompile(`<(?:\w+:)?prop[^>]*>([^<]*)<`)
)

// nullForUnsetFetch answers null, as vCenter does, when a client fetches an unset property (for
// example the snapshot of a VM that has none, or the resource pool of a template) with the
// PropertyCollector's Fetch method, which pyVmomi's property accessors use: the simulator panics
// there (PropertyCollector.Fetch indexes an empty MissingSet) and drops the connection.
func nullForUnsetFetch(next http.Handler) http.Handler {
	const null = `<?xml version="1.0" encoding="UTF-8"?>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` +
		`<soapenv:Body><FetchResponse xmlns="urn:vim25"></FetchResponse></soapenv:Body></soapenv:Envelope>`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != vim25.Path {
			next.ServeHTTP(w, r)
			return
		}
		body, err := ioutil.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.Body = ioutil.NopCloser(bytes.NewReader(body))
		if !fetchRequest.Match(body) {
			next.ServeHTTP(w, r)
			return
		}
		defer func() {
			// ServeSDK writes nothing before the method returns, so the answer is still ours.
			if p := recover(); p != nil {
				prop := ""
				if m := fetchProp.FindSubmatch(body); m != nil {
					prop = string(m[1])
				}
				log.Printf("Fetch of unset property %q: null (simulator: %v)", prop, p)
				w.Header().Set("Content-Type", "text/xml; charset=utf-8")
				_, _ = io.WriteString(w, null)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

var vcSessionCookie = regexp.MustCompile(`<(?:\w+:)?vcSessionCookie[^>]*>([^<]+)</(?:\w+:)?vcSessionCookie>`)

// pbmSDKPath serves the storage policy service at /pbm/sdk, where vCenter has it (the simulator
// registers it at /pbm only), taking the vCenter session from the vcSessionCookie SOAP header as
// vCenter does (the simulator only reads the vmware_soap_session HTTP cookie).
func pbmSDKPath(mux *http.ServeMux) {
	mux.HandleFunc("/pbm/sdk", func(w http.ResponseWriter, r *http.Request) {
		body, err := ioutil.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		forward := r.Clone(r.Context())
		forward.URL.Path = "/pbm"
		forward.Body = ioutil.NopCloser(bytes.NewReader(body))
		if m := vcSessionCookie.FindSubmatch(body); m != nil {
			forward.Header.Del("Cookie")
			forward.AddCookie(&http.Cookie{Name: soap.SessionCookieName, Value: html.UnescapeString(string(m[1]))})
		}
		mux.ServeHTTP(w, forward)
	})
}

func selfSignedCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "vcsim", Organization: []string{"anywhere tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// thumbprint is the certificate's SHA-1 as vSphere shows it: upper-case hex pairs joined by ':'.
func thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = strings.ToUpper(hex.EncodeToString([]byte{b}))
	}
	return strings.Join(pairs, ":")
}

type inventory struct {
	datacenter string
}

// setUp creates the configured folders and templates with a client of the simulator itself.
func setUp(ctx context.Context, c *vim25.Client, cfg *config) (*inventory, error) {
	finder := find.NewFinder(c, true)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return nil, err
	}
	finder.SetDatacenter(dc)
	dcFolders, err := dc.Folders(ctx)
	if err != nil {
		return nil, err
	}
	folders := map[string]*object.Folder{"": dcFolders.VmFolder}
	for _, p := range cfg.Folders {
		if _, err := vmFolder(ctx, c, folders, p); err != nil {
			return nil, fmt.Errorf("folder %q: %w", p, err)
		}
	}
	source, err := finder.VirtualMachine(ctx, sourceVM)
	if err != nil {
		return nil, err
	}
	for _, t := range cfg.Templates {
		folder, err := vmFolder(ctx, c, folders, t.Folder)
		if err != nil {
			return nil, fmt.Errorf("template %q: folder %q: %w", t.Name, t.Folder, err)
		}
		network, err := finder.Network(ctx, t.Network)
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", t.Name, err)
		}
		if err := createTemplate(ctx, c, source, folder, network, t); err != nil {
			return nil, fmt.Errorf("template %q: %w", t.Name, err)
		}
		log.Printf("template %s in folder %q (snapshot %v, disk %d GiB, failing clones %d)",
			t.Name, t.Folder, t.Snapshot, t.DiskGiB, t.FailClones)
	}
	return &inventory{datacenter: dc.Name()}, nil
}

// vmFolder returns the VM folder at a '/'-separated path under the datacenter's vm folder,
// creating the missing levels.
func vmFolder(ctx context.Context, c *vim25.Client, known map[string]*object.Folder, p string) (*object.Folder, error) {
	p = strings.Trim(p, "/")
	if f, ok := known[p]; ok {
		return f, nil
	}
	parentPath, name := "", p
	if i := strings.LastIndex(p, "/"); i >= 0 {
		parentPath, name = p[:i], p[i+1:]
	}
	parent, err := vmFolder(ctx, c, known, parentPath)
	if err != nil {
		return nil, err
	}
	var folder *object.Folder
	ref, err := object.NewSearchIndex(c).FindChild(ctx, parent, name)
	switch {
	case err != nil:
		return nil, err
	case ref == nil:
		if folder, err = parent.CreateFolder(ctx, name); err != nil {
			return nil, err
		}
	default:
		f, ok := ref.(*object.Folder)
		if !ok {
			return nil, fmt.Errorf("%q is a %s, not a folder", p, ref.Reference().Type)
		}
		folder = f
	}
	known[p] = folder
	return folder, nil
}

func createTemplate(ctx context.Context, c *vim25.Client, source *object.VirtualMachine,
	folder *object.Folder, network object.NetworkReference, t templateConfig) error {
	pool, err := source.ResourcePool(ctx)
	if err != nil {
		return err
	}
	poolRef := pool.Reference()
	task, err := source.Clone(ctx, folder, t.Name, types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: &poolRef},
	})
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return err
	}
	vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))

	// The clone shares the source's NIC (same network and MAC) and disk: give it its own.
	devices, err := vm.Device(ctx)
	if err != nil {
		return err
	}
	spec := types.VirtualMachineConfigSpec{GuestId: t.GuestID}
	backing, err := network.EthernetCardBackingInfo(ctx)
	if err != nil {
		return err
	}
	for _, nic := range devices.SelectByType((*types.VirtualEthernetCard)(nil)) {
		card := nic.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
		card.Backing = backing
		card.MacAddress = "" // the simulator generates a new one
		spec.DeviceChange = append(spec.DeviceChange, &types.VirtualDeviceConfigSpec{
			Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: nic,
		})
	}
	if t.DiskGiB > 0 {
		for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
			disk := d.(*types.VirtualDisk)
			disk.CapacityInBytes = t.DiskGiB << 30
			disk.CapacityInKB = t.DiskGiB << 20
			spec.DeviceChange = append(spec.DeviceChange, &types.VirtualDeviceConfigSpec{
				Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: disk,
			})
		}
	}
	if task, err = vm.Reconfigure(ctx, spec); err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	if t.Snapshot {
		if task, err = vm.CreateSnapshot(ctx, "template", "base of linked clones", false, false); err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	if err := vm.MarkAsTemplate(ctx); err != nil {
		return err
	}

	// Replace the simulator's object with the wrapper (same reference): see template.CloneVMTask.
	// The wrapper embeds the VirtualMachine by value: the property collector digs the mo type out
	// of the first field, and cannot through a pointer.
	obj := simulator.Map.Get(vm.Reference()).(*simulator.VirtualMachine)
	simulator.Map.WithLock(obj, func() {
		simulator.Map.Put(&template{VirtualMachine: *obj, failClones: t.FailClones})
	})
	return nil
}

// template wraps a configured template's simulator object (see simulator/example_extend_test.go)
// so that cloning it behaves more like vCenter, and so that its first clones can fail.
// (Snapshot operations on the template itself are not supported once wrapped: the simulator's
// snapshot code expects a *simulator.VirtualMachine.)
type template struct {
	simulator.VirtualMachine

	failClones int // clones still to fail; the dispatcher holds the object's lock
}

// CloneVMTask differs from the simulator's in vCenter's ways:
//   - a name that already exists in the destination folder fails the task with DuplicateName
//     (the simulator creates a second VM of the same name);
//   - while failClones > 0, the task fails with NoDiskSpace ("Insufficient disk space on
//     datastore '...'.") and no VM is created;
//   - spec.config's numCPUs, numCoresPerSocket, memoryMB and annotation are applied to the clone
//     and spec.powerOn powers it on (the simulator ignores them).
//
// Task errors carry vCenter's localized message (the simulator's is the Go type name).
func (t *template) CloneVMTask(ctx *simulator.Context, req *types.CloneVM_Task) soap.HasFault {
	var message string
	task := simulator.CreateTask(t, "cloneVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		ref, fault, msg := t.clone(ctx, req)
		message = msg
		return ref, fault
	})
	ref := task.Run()
	if task.Info.Error != nil && message != "" {
		simulator.Map.Update(task, []types.PropertyChange{{
			Name: "info.error",
			Val:  types.LocalizedMethodFault{Fault: task.Info.Error.Fault, LocalizedMessage: message},
		}})
	}
	return &methods.CloneVM_TaskBody{Res: &types.CloneVM_TaskResponse{Returnval: ref}}
}

func (t *template) clone(ctx *simulator.Context, req *types.CloneVM_Task) (types.AnyType, types.BaseMethodFault, string) {
	if folder, ok := simulator.Map.Get(req.Folder).(*simulator.Folder); ok {
		var existing mo.Entity
		simulator.Map.WithLock(folder, func() { existing = simulator.Map.FindByName(req.Name, folder.ChildEntity) })
		if existing != nil {
			return nil, &types.DuplicateName{Name: req.Name, Object: existing.Reference()},
				fmt.Sprintf("The name '%s' already exists.", req.Name)
		}
	}
	if t.failClones > 0 {
		t.failClones--
		ds := t.datastoreName(req)
		log.Printf("clone of %s as %s: injected NoDiskSpace (%d more to fail)", t.Name, req.Name, t.failClones)
		return nil, &types.NoDiskSpace{
				FileFault: types.FileFault{File: fmt.Sprintf("[%s] %s/%s.vmdk", ds, req.Name, req.Name)},
				Datastore: ds,
			},
			fmt.Sprintf("Insufficient disk space on datastore '%s'.", ds)
	}

	body := t.VirtualMachine.CloneVMTask(ctx, req).(*methods.CloneVM_TaskBody)
	inner := simulator.Map.Get(body.Res.Returnval).(*simulator.Task)
	if inner.Info.Error != nil {
		return nil, inner.Info.Error.Fault, ""
	}
	ref := inner.Info.Result.(types.ManagedObjectReference)
	clone := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	cloneCtx := *ctx
	cloneCtx.Caller = &ref // as the dispatcher does for a call on the clone

	if c := req.Spec.Config; c != nil {
		spec := types.VirtualMachineConfigSpec{
			NumCPUs: c.NumCPUs, NumCoresPerSocket: c.NumCoresPerSocket, MemoryMB: c.MemoryMB, Annotation: c.Annotation,
		}
		if spec.NumCPUs != 0 || spec.NumCoresPerSocket != 0 || spec.MemoryMB != 0 || spec.Annotation != "" {
			var res soap.HasFault
			simulator.Map.WithLock(clone, func() {
				res = clone.ReconfigVMTask(&cloneCtx, &types.ReconfigVM_Task{This: ref, Spec: spec})
			})
			if fault := taskFault(res.(*methods.ReconfigVM_TaskBody).Res.Returnval); fault != nil {
				return nil, fault, ""
			}
		}
	}
	if req.Spec.PowerOn {
		var res soap.HasFault
		simulator.Map.WithLock(clone, func() {
			res = clone.PowerOnVMTask(&cloneCtx, &types.PowerOnVM_Task{This: ref})
		})
		if fault := taskFault(res.(*methods.PowerOnVM_TaskBody).Res.Returnval); fault != nil {
			return nil, fault, ""
		}
	}
	return ref, nil, ""
}

func taskFault(ref types.ManagedObjectReference) types.BaseMethodFault {
	if task := simulator.Map.Get(ref).(*simulator.Task); task.Info.Error != nil {
		return task.Info.Error.Fault
	}
	return nil
}

// datastoreName is the clone's destination datastore: the spec's, else the template's.
func (t *template) datastoreName(req *types.CloneVM_Task) string {
	ref := req.Spec.Location.Datastore
	if ref == nil && len(t.Datastore) > 0 {
		ref = &t.Datastore[0]
	}
	if ref != nil {
		if ds, ok := simulator.Map.Get(*ref).(*simulator.Datastore); ok {
			return ds.Name
		}
	}
	return "LocalDS_0"
}

func createTags(ctx context.Context, c *vim25.Client, user *url.Userinfo, wanted []tagConfig) (map[string]string, error) {
	ids := map[string]string{}
	if len(wanted) == 0 {
		return ids, nil
	}
	rc := rest.NewClient(c)
	if err := rc.Login(ctx, user); err != nil {
		return nil, err
	}
	defer func() { _ = rc.Logout(ctx) }()
	m := tags.NewManager(rc)
	categories := map[string]string{}
	for _, t := range wanted {
		category, ok := categories[t.Category]
		if !ok {
			id, err := m.CreateCategory(ctx, &tags.Category{Name: t.Category, Cardinality: "MULTIPLE"})
			if err != nil {
				return nil, fmt.Errorf("category %q: %w", t.Category, err)
			}
			categories[t.Category], category = id, id
		}
		key := t.Category + "/" + t.Name
		if _, ok := ids[key]; ok {
			continue
		}
		id, err := m.CreateTag(ctx, &tags.Tag{Name: t.Name, CategoryID: category})
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", key, err)
		}
		ids[key] = id
		log.Printf("tag %s: %s", key, id)
	}
	return ids, nil
}

// guestSimulator stands in for VMware Tools and a DHCP server, which the simulator lacks: a
// powered-on VM (not a template) whose first NIC (lowest device key) is on a network with a DHCP
// range gets, ipDelay after it is first seen powered on, the lowest free address of the range as
// guest.ipAddress and in its guest.net entry, its name as guest.hostName, and tools reported
// running (toolsOk). When the VM is no longer powered on, or is destroyed, the address is released
// and the guest information cleared. A VM on another network never gets an address.
//
// It reads the inventory through the API every 100 ms and writes the guest information into the
// simulator's objects directly, as VMware Tools reports it to vCenter: no task, no event.
type guestSimulator struct {
	view    *view.ContainerView
	delay   time.Duration
	pools   map[string]*pool                           // by network name
	dvpg    map[string]string                          // distributed port group key -> name
	leases  map[types.ManagedObjectReference]lease     // by VM
	waiting map[types.ManagedObjectReference]time.Time // powered on without a lease, since
}

type lease struct {
	pool *pool
	ip   uint32
}

type pool struct {
	network     string
	first, last uint32
	used        map[uint32]bool
}

func (p *pool) allocate() (uint32, bool) {
	for a := uint64(p.first); a <= uint64(p.last); a++ {
		if !p.used[uint32(a)] {
			p.used[uint32(a)] = true
			return uint32(a), true
		}
	}
	return 0, false
}

func newGuestSimulator(ctx context.Context, c *vim25.Client, cfg *config) (*guestSimulator, error) {
	g := &guestSimulator{
		delay:   time.Duration(*cfg.IPDelayMs) * time.Millisecond,
		pools:   map[string]*pool{},
		dvpg:    map[string]string{},
		leases:  map[types.ManagedObjectReference]lease{},
		waiting: map[types.ManagedObjectReference]time.Time{},
	}
	finder := find.NewFinder(c, true)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return nil, err
	}
	finder.SetDatacenter(dc)
	for name, r := range cfg.DHCP {
		if _, err := finder.Network(ctx, name); err != nil {
			return nil, fmt.Errorf("network %q: %w", name, err)
		}
		first, err := parseIPv4(r.First)
		if err != nil {
			return nil, fmt.Errorf("network %q: first: %w", name, err)
		}
		last, err := parseIPv4(r.Last)
		if err != nil {
			return nil, fmt.Errorf("network %q: last: %w", name, err)
		}
		if first > last {
			return nil, fmt.Errorf("network %q: first %s is after last %s", name, r.First, r.Last)
		}
		g.pools[name] = &pool{network: name, first: first, last: last, used: map[uint32]bool{}}
		log.Printf("dhcp on %q: %s - %s", name, r.First, r.Last)
	}
	kinds := []string{"VirtualMachine", "DistributedVirtualPortgroup"}
	g.view, err = view.NewManager(c).CreateContainerView(ctx, c.ServiceContent.RootFolder, kinds, true)
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (g *guestSimulator) run(ctx context.Context) {
	if len(g.pools) == 0 {
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := g.round(ctx); err != nil && ctx.Err() == nil {
			log.Printf("dhcp: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (g *guestSimulator) round(ctx context.Context) error {
	var pgs []mo.DistributedVirtualPortgroup
	if err := g.view.Retrieve(ctx, []string{"DistributedVirtualPortgroup"}, []string{"key", "name"}, &pgs); err != nil {
		return err
	}
	for _, pg := range pgs {
		g.dvpg[pg.Key] = pg.Name
	}
	var vms []mo.VirtualMachine
	props := []string{"name", "config.template", "config.hardware.device", "runtime.powerState"}
	if err := g.view.Retrieve(ctx, []string{"VirtualMachine"}, props, &vms); err != nil {
		return err
	}
	now := time.Now()
	present := map[types.ManagedObjectReference]bool{}
	for i := range vms {
		vm := &vms[i]
		present[vm.Self] = true
		on := vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && vm.Config != nil && !vm.Config.Template
		l, leased := g.leases[vm.Self]
		switch {
		case !on:
			delete(g.waiting, vm.Self)
			if leased {
				g.release(vm.Self, l, vm.Name)
				updateGuest(vm.Self, nil, "", nil)
			}
			continue
		case leased:
			continue
		}
		nic, network := g.firstNIC(vm)
		p := g.pools[network]
		if p == nil {
			delete(g.waiting, vm.Self)
			continue
		}
		since, ok := g.waiting[vm.Self]
		if !ok {
			g.waiting[vm.Self], since = now, now
		}
		if now.Sub(since) < g.delay {
			continue
		}
		ip, ok := p.allocate()
		if !ok {
			log.Printf("dhcp: no free address on %q for %s", network, vm.Name)
			continue
		}
		if updateGuest(vm.Self, nic, network, &lease{pool: p, ip: ip}) {
			g.leases[vm.Self] = lease{pool: p, ip: ip}
			delete(g.waiting, vm.Self)
			log.Printf("dhcp: %s to %s (%s) on %q", formatIPv4(ip), vm.Name, vm.Self.Value, network)
		} else {
			delete(p.used, ip)
		}
	}
	for ref, l := range g.leases {
		if !present[ref] {
			g.release(ref, l, "destroyed VM")
		}
	}
	for ref := range g.waiting {
		if !present[ref] {
			delete(g.waiting, ref)
		}
	}
	return nil
}

func (g *guestSimulator) release(ref types.ManagedObjectReference, l lease, name string) {
	delete(l.pool.used, l.ip)
	delete(g.leases, ref)
	log.Printf("dhcp: released %s of %s (%s)", formatIPv4(l.ip), name, ref.Value)
}

// firstNIC is the VM's ethernet card of lowest device key and the name of its network.
func (g *guestSimulator) firstNIC(vm *mo.VirtualMachine) (*types.VirtualEthernetCard, string) {
	if vm.Config == nil {
		return nil, ""
	}
	var first *types.VirtualEthernetCard
	for _, d := range object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualEthernetCard)(nil)) {
		card := d.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
		if first == nil || card.Key < first.Key {
			first = card
		}
	}
	if first == nil {
		return nil, ""
	}
	switch b := first.Backing.(type) {
	case *types.VirtualEthernetCardNetworkBackingInfo:
		return first, b.DeviceName
	case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
		return first, g.dvpg[b.Port.PortgroupKey]
	}
	return first, ""
}

// updateGuest writes a VM's guest information into the simulator: with a lease, the address on
// the NIC's guest.net entry, guest.ipAddress and guest.hostName, tools running; without, all
// addresses cleared and tools not running. It reports whether the lease was given (the VM still
// exists and is powered on).
func updateGuest(ref types.ManagedObjectReference, nic *types.VirtualEthernetCard, network string, l *lease) bool {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	simulator.Map.WithLock(vm, func() {
		if vm.Guest == nil || vm.Summary.Guest == nil {
			ok = false
			return
		}
		nets := append([]types.GuestNicInfo(nil), vm.Guest.Net...)
		ip, host, state := "", "", "notRunning"
		running, tools := types.VirtualMachineToolsRunningStatusGuestToolsNotRunning, types.VirtualMachineToolsStatusToolsNotRunning
		if l != nil {
			if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
				ok = false
				return
			}
			ip, host = formatIPv4(l.ip), vm.Name
			running, tools, state = types.VirtualMachineToolsRunningStatusGuestToolsRunning, types.VirtualMachineToolsStatusToolsOk, "running"
			i := 0
			for i < len(nets) && nets[i].DeviceConfigId != nic.Key {
				i++
			}
			if i == len(nets) {
				nets = append(nets, types.GuestNicInfo{MacAddress: nic.MacAddress, DeviceConfigId: nic.Key})
			}
			nets[i].Network, nets[i].MacAddress, nets[i].Connected, nets[i].IpAddress = network, nic.MacAddress, true, []string{ip}
		} else {
			for i := range nets {
				nets[i].IpAddress = nil
			}
		}
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "guest.net", Val: nets},
			{Name: "guest.ipAddress", Val: ip},
			{Name: "guest.hostName", Val: host},
			{Name: "guest.toolsRunningStatus", Val: string(running)},
			{Name: "guest.toolsStatus", Val: tools},
			{Name: "guest.guestState", Val: state},
			{Name: "summary.guest.ipAddress", Val: ip},
			{Name: "summary.guest.hostName", Val: host},
			{Name: "summary.guest.toolsRunningStatus", Val: string(running)},
			{Name: "summary.guest.toolsStatus", Val: tools},
		})
	})
	return ok
}

func parseIPv4(s string) (uint32, error) {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return 0, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return binary.BigEndian.Uint32(ip), nil
}

func formatIPv4(a uint32) string {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, a)
	return ip.String()
}
