// Reference harness for tests/data/spz (not part of lrm-studio): raw floats <-> .spz through
// Niantic's spz library, declaring our data RDF as a 3DGS PLY is.
//   encode IN.bin OUT.spz VERSION   IN: int32 n, int32 degree, then float32 arrays positions [n*3],
//                                   log-scales [n*3], rotations xyzw [n*4], opacity logits [n],
//                                   f_dc [n*3], SH without DC [n*dim*3] (colour innermost)
//   decode IN.spz OUT.bin           the same layout, converted back to RDF
// Build: g++ -std=c++17 -I<spz>/src -I<spz>/src/cc make_reference.cc <spz>/src/cc/load-spz.cc
//        <spz>/src/cc/splat-types.cc -lzstd -lz -lpthread -o harness
#include "cc/load-spz.h"
#include <cstdio>
#include <fstream>
#include <string>
using namespace spz;
static int dim(int d){return d==0?0:d==1?3:d==2?8:d==3?15:24;}
int main(int argc, char** argv){
  std::string mode=argv[1];
  if(mode=="encode"){
    std::ifstream in(argv[2], std::ios::binary); int32_t n,d; in.read((char*)&n,4); in.read((char*)&d,4);
    GaussianCloud g; g.numPoints=n; g.shDegree=d;
    auto rd=[&](std::vector<float>&v,size_t k){v.resize(k); in.read((char*)v.data(),k*4);};
    rd(g.positions,n*3); rd(g.scales,n*3); rd(g.rotations,n*4); rd(g.alphas,n); rd(g.colors,n*3); rd(g.sh,(size_t)n*dim(d)*3);
    PackOptions o; o.from=CoordinateSystem::RDF; o.version=std::stoi(argv[4]);
    return saveSpz(g,o,std::string(argv[3]))?0:1;
  } else {
    UnpackOptions o; o.to=CoordinateSystem::RDF;
    GaussianCloud g=loadSpz(std::string(argv[2]),o);
    std::ofstream out(argv[3], std::ios::binary); int32_t n=g.numPoints,d=g.shDegree; out.write((char*)&n,4); out.write((char*)&d,4);
    for(auto* v:{&g.positions,&g.scales,&g.rotations,&g.alphas,&g.colors,&g.sh}) out.write((char*)v->data(),v->size()*4);
    return n>0?0:1;
  }
}
