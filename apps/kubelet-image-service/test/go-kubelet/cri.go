package main

// The CRI messages kubelet's image calls carry, hand-written for github.com/golang/protobuf
// 1.3 (the version Debian ships next to grpc-go 1.33): that library encodes any struct whose
// fields carry `protobuf:` tags. Field numbers follow kubernetes/cri-api
// pkg/apis/runtime/v1/api.proto; only the fields this client reads or sends are declared,
// the rest are skipped on decode as protobuf does.

import "github.com/golang/protobuf/proto"

type ImageSpec struct {
	Image              string            `protobuf:"bytes,1,opt,name=image,proto3"`
	Annotations        map[string]string `protobuf:"bytes,2,rep,name=annotations,proto3" protobuf_key:"bytes,1,opt,name=key,proto3" protobuf_val:"bytes,2,opt,name=value,proto3"`
	UserSpecifiedImage string            `protobuf:"bytes,18,opt,name=user_specified_image,proto3"`
	RuntimeHandler     string            `protobuf:"bytes,19,opt,name=runtime_handler,proto3"`
}

type Int64Value struct {
	Value int64 `protobuf:"varint,1,opt,name=value,proto3"`
}

type UInt64Value struct {
	Value uint64 `protobuf:"varint,1,opt,name=value,proto3"`
}

type Image struct {
	Id          string      `protobuf:"bytes,1,opt,name=id,proto3"`
	RepoTags    []string    `protobuf:"bytes,2,rep,name=repo_tags,proto3"`
	RepoDigests []string    `protobuf:"bytes,3,rep,name=repo_digests,proto3"`
	Size        uint64      `protobuf:"varint,4,opt,name=size,proto3"`
	Uid         *Int64Value `protobuf:"bytes,5,opt,name=uid,proto3"`
	Username    string      `protobuf:"bytes,6,opt,name=username,proto3"`
}

type ImageFilter struct {
	Image *ImageSpec `protobuf:"bytes,1,opt,name=image,proto3"`
}

type ListImagesRequest struct {
	Filter *ImageFilter `protobuf:"bytes,1,opt,name=filter,proto3"`
}

type ListImagesResponse struct {
	Images []*Image `protobuf:"bytes,1,rep,name=images,proto3"`
}

type ImageStatusRequest struct {
	Image   *ImageSpec `protobuf:"bytes,1,opt,name=image,proto3"`
	Verbose bool       `protobuf:"varint,2,opt,name=verbose,proto3"`
}

type ImageStatusResponse struct {
	Image *Image `protobuf:"bytes,1,opt,name=image,proto3"`
}

type AuthConfig struct {
	Username string `protobuf:"bytes,1,opt,name=username,proto3"`
	Password string `protobuf:"bytes,2,opt,name=password,proto3"`
}

type PodSandboxMetadata struct {
	Name      string `protobuf:"bytes,1,opt,name=name,proto3"`
	Uid       string `protobuf:"bytes,2,opt,name=uid,proto3"`
	Namespace string `protobuf:"bytes,3,opt,name=namespace,proto3"`
}

type PodSandboxConfig struct {
	Metadata *PodSandboxMetadata `protobuf:"bytes,1,opt,name=metadata,proto3"`
}

type PullImageRequest struct {
	Image         *ImageSpec        `protobuf:"bytes,1,opt,name=image,proto3"`
	Auth          *AuthConfig       `protobuf:"bytes,2,opt,name=auth,proto3"`
	SandboxConfig *PodSandboxConfig `protobuf:"bytes,3,opt,name=sandbox_config,proto3"`
}

type PullImageResponse struct {
	ImageRef string `protobuf:"bytes,1,opt,name=image_ref,proto3"`
}

type RemoveImageRequest struct {
	Image *ImageSpec `protobuf:"bytes,1,opt,name=image,proto3"`
}

type RemoveImageResponse struct{}

type ImageFsInfoRequest struct{}

type FilesystemIdentifier struct {
	Mountpoint string `protobuf:"bytes,1,opt,name=mountpoint,proto3"`
}

type FilesystemUsage struct {
	Timestamp int64                 `protobuf:"varint,1,opt,name=timestamp,proto3"`
	FsId      *FilesystemIdentifier `protobuf:"bytes,2,opt,name=fs_id,proto3"`
	UsedBytes *UInt64Value          `protobuf:"bytes,3,opt,name=used_bytes,proto3"`
}

type ImageFsInfoResponse struct {
	ImageFilesystems []*FilesystemUsage `protobuf:"bytes,1,rep,name=image_filesystems,proto3"`
}

type VersionRequest struct {
	Version string `protobuf:"bytes,1,opt,name=version,proto3"`
}

type VersionResponse struct {
	Version           string `protobuf:"bytes,1,opt,name=version,proto3"`
	RuntimeName       string `protobuf:"bytes,2,opt,name=runtime_name,proto3"`
	RuntimeVersion    string `protobuf:"bytes,3,opt,name=runtime_version,proto3"`
	RuntimeApiVersion string `protobuf:"bytes,4,opt,name=runtime_api_version,proto3"`
}

// proto.Message for each: the reflection-based codec needs nothing more.
func (m *ImageSpec) Reset()           { *m = ImageSpec{} }
func (m *ImageSpec) String() string   { return proto.CompactTextString(m) }
func (*ImageSpec) ProtoMessage()      {}
func (m *Int64Value) Reset()          { *m = Int64Value{} }
func (m *Int64Value) String() string  { return proto.CompactTextString(m) }
func (*Int64Value) ProtoMessage()     {}
func (m *UInt64Value) Reset()         { *m = UInt64Value{} }
func (m *UInt64Value) String() string { return proto.CompactTextString(m) }
func (*UInt64Value) ProtoMessage()    {}
func (m *Image) Reset()               { *m = Image{} }
func (m *Image) String() string       { return proto.CompactTextString(m) }
func (*Image) ProtoMessage()          {}
func (m *ImageFilter) Reset()         { *m = ImageFilter{} }
func (m *ImageFilter) String() string { return proto.CompactTextString(m) }
func (*ImageFilter) ProtoMessage()    {}
func (m *ListImagesRequest) Reset()   { *m = ListImagesRequest{} }
func (m *ListImagesRequest) String() string {
	return proto.CompactTextString(m)
}
func (*ListImagesRequest) ProtoMessage() {}
func (m *ListImagesResponse) Reset()     { *m = ListImagesResponse{} }
func (m *ListImagesResponse) String() string {
	return proto.CompactTextString(m)
}
func (*ListImagesResponse) ProtoMessage() {}
func (m *ImageStatusRequest) Reset()      { *m = ImageStatusRequest{} }
func (m *ImageStatusRequest) String() string {
	return proto.CompactTextString(m)
}
func (*ImageStatusRequest) ProtoMessage() {}
func (m *ImageStatusResponse) Reset()     { *m = ImageStatusResponse{} }
func (m *ImageStatusResponse) String() string {
	return proto.CompactTextString(m)
}
func (*ImageStatusResponse) ProtoMessage() {}
func (m *AuthConfig) Reset()               { *m = AuthConfig{} }
func (m *AuthConfig) String() string       { return "AuthConfig{...}" } // never print a password
func (*AuthConfig) ProtoMessage()          {}
func (m *PodSandboxMetadata) Reset()       { *m = PodSandboxMetadata{} }
func (m *PodSandboxMetadata) String() string {
	return proto.CompactTextString(m)
}
func (*PodSandboxMetadata) ProtoMessage()   {}
func (m *PodSandboxConfig) Reset()          { *m = PodSandboxConfig{} }
func (m *PodSandboxConfig) String() string  { return proto.CompactTextString(m) }
func (*PodSandboxConfig) ProtoMessage()     {}
func (m *PullImageRequest) Reset()          { *m = PullImageRequest{} }
func (m *PullImageRequest) String() string  { return "PullImageRequest{...}" } // carries AuthConfig
func (*PullImageRequest) ProtoMessage()     {}
func (m *PullImageResponse) Reset()         { *m = PullImageResponse{} }
func (m *PullImageResponse) String() string { return proto.CompactTextString(m) }
func (*PullImageResponse) ProtoMessage()    {}
func (m *RemoveImageRequest) Reset()        { *m = RemoveImageRequest{} }
func (m *RemoveImageRequest) String() string {
	return proto.CompactTextString(m)
}
func (*RemoveImageRequest) ProtoMessage() {}
func (m *RemoveImageResponse) Reset()     { *m = RemoveImageResponse{} }
func (m *RemoveImageResponse) String() string {
	return proto.CompactTextString(m)
}
func (*RemoveImageResponse) ProtoMessage() {}
func (m *ImageFsInfoRequest) Reset()       { *m = ImageFsInfoRequest{} }
func (m *ImageFsInfoRequest) String() string {
	return proto.CompactTextString(m)
}
func (*ImageFsInfoRequest) ProtoMessage() {}
func (m *FilesystemIdentifier) Reset()    { *m = FilesystemIdentifier{} }
func (m *FilesystemIdentifier) String() string {
	return proto.CompactTextString(m)
}
func (*FilesystemIdentifier) ProtoMessage() {}
func (m *FilesystemUsage) Reset()           { *m = FilesystemUsage{} }
func (m *FilesystemUsage) String() string   { return proto.CompactTextString(m) }
func (*FilesystemUsage) ProtoMessage()      {}
func (m *ImageFsInfoResponse) Reset()       { *m = ImageFsInfoResponse{} }
func (m *ImageFsInfoResponse) String() string {
	return proto.CompactTextString(m)
}
func (*ImageFsInfoResponse) ProtoMessage() {}
func (m *VersionRequest) Reset()           { *m = VersionRequest{} }
func (m *VersionRequest) String() string   { return proto.CompactTextString(m) }
func (*VersionRequest) ProtoMessage()      {}
func (m *VersionResponse) Reset()          { *m = VersionResponse{} }
func (m *VersionResponse) String() string  { return proto.CompactTextString(m) }
func (*VersionResponse) ProtoMessage()     {}
